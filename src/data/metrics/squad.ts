/**
 * SQuAD v1.1 exact match and token F1, as the official evaluation script: normalise (lowercase, drop ASCII
 * punctuation, drop the articles a/an/the, collapse whitespace), then take the best score over the gold answers.
 */
import { checkLengths } from './accuracy.js';

const PUNCTUATION = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');
// Python's \b is Unicode-aware; JavaScript's is ASCII-only, so spell the word boundary out.
const ARTICLES = /(?<![\p{L}\p{N}_])(a|an|the)(?![\p{L}\p{N}_])/gu;

export function normalizeAnswer(s: string): string {
  let t = s.toLowerCase();
  t = [...t].filter((ch) => !PUNCTUATION.has(ch)).join('');
  t = t.replace(ARTICLES, ' ');
  return t
    .split(/\s+/u)
    .filter((w) => w !== '')
    .join(' ');
}

function tokens(s: string): string[] {
  const n = normalizeAnswer(s);
  return n === '' ? [] : n.split(' ');
}

/** 1 if the normalised strings are equal, else 0. */
export function exactMatchScore(prediction: string, gold: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(gold) ? 1 : 0;
}

/** Token-overlap F1 between normalised prediction and gold, in [0, 1]. */
export function tokenF1(prediction: string, gold: string): number {
  const p = tokens(prediction);
  const g = tokens(gold);
  const counts = new Map<string, number>();
  for (const w of g) counts.set(w, (counts.get(w) ?? 0) + 1);
  let same = 0;
  for (const w of p) {
    const c = counts.get(w) ?? 0;
    if (c > 0) {
      same++;
      counts.set(w, c - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / p.length;
  const recall = same / g.length;
  return (2 * precision * recall) / (precision + recall);
}

/** Mean over examples of the max over gold answers, for EM and F1, both in percent. */
export function squadScores(
  predictions: readonly string[],
  golds: readonly (readonly string[])[],
): { em: number; f1: number } {
  checkLengths(predictions, golds);
  if (golds.length === 0) return { em: 0, f1: 0 };
  let em = 0;
  let f1 = 0;
  for (let i = 0; i < golds.length; i++) {
    const p = predictions[i] as string;
    const gs = golds[i] as readonly string[];
    if (gs.length === 0) throw new RangeError(`example ${i} has no gold answer`);
    em += Math.max(...gs.map((g) => exactMatchScore(p, g)));
    f1 += Math.max(...gs.map((g) => tokenF1(p, g)));
  }
  return { em: (100 * em) / golds.length, f1: (100 * f1) / golds.length };
}
