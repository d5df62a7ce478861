import { type BinaryLabels, binaryConfusion, DEFAULT_BINARY_LABELS } from './binary-confusion.js';

/**
 * Binary F1 of the positive class, in percent; an invalid prediction counts as wrong (see binaryConfusion).
 * No true or predicted positives at all gives 0, as scikit-learn does.
 */
export function binaryF1(
  predictions: readonly string[],
  targets: readonly string[],
  labels: BinaryLabels = DEFAULT_BINARY_LABELS,
): number {
  const { tp, fp, fn } = binaryConfusion(predictions, targets, labels);
  const denom = 2 * tp + fp + fn;
  return denom === 0 ? 0 : (100 * 2 * tp) / denom;
}
