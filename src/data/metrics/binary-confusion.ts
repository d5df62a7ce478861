import { checkLengths } from './accuracy.js';

/** Positive/negative label strings of a binary task (GLUE/SuperGLUE: '1' and '0'). */
export interface BinaryLabels {
  positive: string;
  negative: string;
}

export const DEFAULT_BINARY_LABELS: BinaryLabels = Object.freeze({ positive: '1', negative: '0' });

export interface BinaryConfusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
  /** Predictions that were neither label. */
  invalid: number;
}

/**
 * Confusion counts where a prediction that is neither label counts as wrong: it is replaced by the opposite of
 * its target (ATTEMPT's `f1_score_with_invalid`), so it is a false negative on a positive target and a false
 * positive on a negative one.
 */
export function binaryConfusion(
  predictions: readonly string[],
  targets: readonly string[],
  labels: BinaryLabels = DEFAULT_BINARY_LABELS,
): BinaryConfusion {
  checkLengths(predictions, targets);
  const c: BinaryConfusion = { tp: 0, fp: 0, tn: 0, fn: 0, invalid: 0 };
  for (let i = 0; i < targets.length; i++) {
    const t = (targets[i] as string).trim();
    if (t !== labels.positive && t !== labels.negative) {
      throw new RangeError(`target ${i} is '${t}', not '${labels.positive}' or '${labels.negative}'`);
    }
    const truth = t === labels.positive;
    let p = (predictions[i] as string).trim();
    if (p !== labels.positive && p !== labels.negative) {
      c.invalid++;
      p = truth ? labels.negative : labels.positive;
    }
    const pred = p === labels.positive;
    if (pred && truth) c.tp++;
    else if (pred) c.fp++;
    else if (truth) c.fn++;
    else c.tn++;
  }
  return c;
}
