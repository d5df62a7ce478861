/**
 * Linear warm-up then linear decay to zero, exactly as transformers' get_linear_schedule_with_warmup (which both
 * official codes use): the multiplier for update k (0-based) is k / warmup during warm-up, then
 * (total - k) / (total - warmup), never below 0. Note the first update has rate 0 when warm-up is on.
 */
export function linearWarmupDecay(update: number, warmupSteps: number, totalSteps: number): number {
  if (update < warmupSteps) return update / Math.max(1, warmupSteps);
  return Math.max(0, (totalSteps - update) / Math.max(1, totalSteps - warmupSteps));
}
