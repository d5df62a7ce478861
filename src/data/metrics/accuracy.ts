/** Percentage of predictions equal to their target (both trimmed). Empty input scores 0. */
export function accuracy(predictions: readonly string[], targets: readonly string[]): number {
  checkLengths(predictions, targets);
  if (targets.length === 0) return 0;
  let hit = 0;
  for (let i = 0; i < targets.length; i++)
    if ((predictions[i] as string).trim() === (targets[i] as string).trim()) hit++;
  return (100 * hit) / targets.length;
}

export function checkLengths(predictions: readonly unknown[], targets: readonly unknown[]): void {
  if (predictions.length !== targets.length) {
    throw new RangeError(
      `${predictions.length} predictions for ${targets.length} targets: they must pair up`,
    );
  }
}
