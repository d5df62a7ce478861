import { checkLengths } from './accuracy.js';

/**
 * Macro-averaged F1 over the given labels, in percent (CB: 3 classes). A prediction outside the labels is a
 * false negative for its target's class and a false positive for none. A class with no target and no
 * prediction has F1 0 (scikit-learn's zero_division default), so it pulls the average down.
 */
export function macroF1(
  predictions: readonly string[],
  targets: readonly string[],
  labels: readonly string[],
): number {
  checkLengths(predictions, targets);
  if (labels.length === 0) throw new RangeError('macroF1 needs at least one label');
  let sum = 0;
  for (const l of labels) {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    for (let i = 0; i < targets.length; i++) {
      const p = (predictions[i] as string).trim() === l;
      const t = (targets[i] as string).trim() === l;
      if (p && t) tp++;
      else if (p) fp++;
      else if (t) fn++;
    }
    const denom = 2 * tp + fp + fn;
    sum += denom === 0 ? 0 : (2 * tp) / denom;
  }
  return (100 * sum) / labels.length;
}
