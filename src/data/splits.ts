/**
 * ATTEMPT's split rules (attempt/data/tasks.py, `split_validation_test`). GLUE and SuperGLUE test labels are
 * hidden, so the reported "test" numbers come from official validation data:
 * - small sets (fewer than 10k training examples): the official validation set is shuffled (seed 42) and halved:
 *   first half validation, second half test; train is the official train.
 * - large sets: 1,000 official training examples (shuffled, seed 42) are held out as validation; the rest is
 *   train; the official validation set is test.
 * - fixed: each split is one official split (MNLI: validation = mismatched, test = matched; the demo suite).
 * The shuffle is ours (mulberry32), not torch's randperm, so the exact halves differ from the released code's.
 */
import { permutation, rngFor } from './rng.js';

export type SplitRule =
  | { kind: 'halve-validation'; train: string; validation: string }
  | { kind: 'holdout-train'; train: string; validation: string; holdout: number }
  | { kind: 'fixed'; train: string; validation: string; test: string }
  /** Decide by size: halve-validation under `threshold` training rows, holdout-train otherwise. */
  | { kind: 'by-size'; train: string; validation: string; threshold: number; holdout: number };

export const DEFAULT_SPLIT_SEED = 42;
export const DEFAULT_HOLDOUT = 1_000;

export interface SplitIndices {
  train: number[];
  validation: number[];
  test: number[];
}

/** Resolves 'by-size' into the concrete rule for a training set of `trainSize` rows. */
export function resolveSplitRule(
  rule: SplitRule,
  trainSize: number,
): Exclude<SplitRule, { kind: 'by-size' }> {
  if (rule.kind !== 'by-size') return rule;
  return trainSize < rule.threshold
    ? { kind: 'halve-validation', train: rule.train, validation: rule.validation }
    : { kind: 'holdout-train', train: rule.train, validation: rule.validation, holdout: rule.holdout };
}

/**
 * Shuffles `n` items and cuts the first `first` off. With `groups` (one key per item), whole groups are shuffled
 * and cut instead, so that no group straddles the cut (MultiRC questions); the cut then falls at the first group
 * boundary at or after `first` items.
 */
export function shuffleAndCut(
  n: number,
  first: number,
  seed: number,
  salt: string,
  groups?: readonly string[],
): { head: number[]; tail: number[] } {
  const rng = rngFor(seed, 'split', salt);
  if (!groups) {
    const p = Array.from(permutation(rng, n));
    return { head: p.slice(0, first), tail: p.slice(first) };
  }
  const byKey = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    const k = groups[i] as string;
    let list = byKey.get(k);
    if (!list) {
      list = [];
      byKey.set(k, list);
    }
    list.push(i);
  }
  const keys = [...byKey.keys()];
  const order = permutation(rng, keys.length);
  const head: number[] = [];
  const tail: number[] = [];
  for (const g of order) {
    const members = byKey.get(keys[g] as string) as number[];
    (head.length < first ? head : tail).push(...members);
  }
  return { head, tail };
}

/**
 * Index sets into the official splits. For 'halve-validation' the validation/test indices point into the official
 * validation split; for 'holdout-train' train/validation point into official train and test into official
 * validation; for 'fixed' each points into its own split.
 */
export function splitIndices(
  rule: Exclude<SplitRule, { kind: 'by-size' }>,
  sizes: { train: number; validation: number; test?: number },
  options: {
    seed?: number;
    salt?: string;
    trainGroups?: readonly string[];
    validationGroups?: readonly string[];
  } = {},
): SplitIndices {
  const seed = options.seed ?? DEFAULT_SPLIT_SEED;
  const salt = options.salt ?? '';
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  switch (rule.kind) {
    case 'halve-validation': {
      const cut = shuffleAndCut(
        sizes.validation,
        Math.floor(sizes.validation / 2),
        seed,
        salt,
        options.validationGroups,
      );
      return { train: range(sizes.train), validation: cut.head, test: cut.tail };
    }
    case 'holdout-train': {
      if (sizes.train <= rule.holdout) {
        throw new RangeError(`holdout of ${rule.holdout} needs more than ${sizes.train} training rows`);
      }
      const cut = shuffleAndCut(sizes.train, rule.holdout, seed, salt, options.trainGroups);
      // Keep file order for the remaining training rows: the sampler shuffles anyway and it reads better.
      return { train: cut.tail.sort((a, b) => a - b), validation: cut.head, test: range(sizes.validation) };
    }
    case 'fixed':
      return { train: range(sizes.train), validation: range(sizes.validation), test: range(sizes.test ?? 0) };
  }
}
