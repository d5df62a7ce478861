import { checkLengths } from './accuracy.js';

export interface ParsedScores {
  predictions: number[];
  targets: number[];
  /** Predictions that were not a finite number. */
  invalid: number;
}

/**
 * Parses generated STS-B scores. A prediction that is not a finite number counts as the worst case: it is
 * replaced by the end of the scale farthest from its gold score (`max` when gold < midpoint, else `min`), the
 * largest error a valid prediction could make. (ATTEMPT's `string_to_float` uses -1, a value that can even
 * raise the correlation when golds are low; ours can only lower it.) Numeric predictions are used as they are.
 */
export function parseScores(
  predictions: readonly string[],
  targets: readonly string[],
  range: { min: number; max: number } = { min: 0, max: 5 },
): ParsedScores {
  checkLengths(predictions, targets);
  const mid = (range.min + range.max) / 2;
  const out: ParsedScores = { predictions: [], targets: [], invalid: 0 };
  for (let i = 0; i < targets.length; i++) {
    const t = Number((targets[i] as string).trim());
    if (!Number.isFinite(t)) throw new RangeError(`target ${i} '${targets[i]}' is not a number`);
    const s = (predictions[i] as string).trim();
    let p = s === '' ? Number.NaN : Number(s);
    if (!Number.isFinite(p)) {
      out.invalid++;
      p = t < mid ? range.max : range.min;
    }
    out.predictions.push(p);
    out.targets.push(t);
  }
  return out;
}
