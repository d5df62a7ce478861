import { accuracy, checkLengths } from './accuracy.js';
import { type BinaryLabels, DEFAULT_BINARY_LABELS } from './binary-confusion.js';
import { binaryF1 } from './f1.js';

/** MultiRC F1a: binary F1 over every answer option of every question (invalid predictions count as wrong). */
export function multircF1a(
  predictions: readonly string[],
  targets: readonly string[],
  labels: BinaryLabels = DEFAULT_BINARY_LABELS,
): number {
  return binaryF1(predictions, targets, labels);
}

/**
 * MultiRC exact match: percentage of questions (groups) whose answer options are all predicted correctly.
 * `groups[i]` is the question id of answer i.
 */
export function multircExactMatch(
  predictions: readonly string[],
  targets: readonly string[],
  groups: readonly string[],
): number {
  checkLengths(predictions, targets);
  checkLengths(groups, targets);
  const allRight = new Map<string, boolean>();
  for (let i = 0; i < targets.length; i++) {
    const g = groups[i] as string;
    const ok = accuracy([predictions[i] as string], [targets[i] as string]) === 100;
    allRight.set(g, (allRight.get(g) ?? true) && ok);
  }
  if (allRight.size === 0) return 0;
  let n = 0;
  for (const ok of allRight.values()) if (ok) n++;
  return (100 * n) / allRight.size;
}
