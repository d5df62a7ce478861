import { type BinaryLabels, binaryConfusion, DEFAULT_BINARY_LABELS } from './binary-confusion.js';

/**
 * Matthews correlation coefficient x 100 (CoLA). An invalid prediction counts as wrong (replaced by the opposite
 * of its target), like F1. A zero denominator (all predictions or all targets one class) gives 0, as scikit-learn.
 */
export function matthewsCorrelation(
  predictions: readonly string[],
  targets: readonly string[],
  labels: BinaryLabels = DEFAULT_BINARY_LABELS,
): number {
  const { tp, fp, tn, fn } = binaryConfusion(predictions, targets, labels);
  const denom = Math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn));
  return denom === 0 ? 0 : (100 * (tp * tn - fp * fn)) / denom;
}
