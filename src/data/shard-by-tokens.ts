/**
 * Splits a global batch across workers so each gets about the same number of tokens (the cost of a step is set by
 * the slowest worker). Greedy longest-processing-time: items in decreasing length go to the worker with the
 * fewest tokens so far, ties broken by fewer items, then lower rank; so with at least as many items as workers,
 * the first `worldSize` items land on distinct workers and nobody is empty-handed. Deterministic: equal lengths
 * keep batch order. Within a shard, items keep their batch order.
 */
export function shardByTokens<T>(batch: readonly T[], lengths: readonly number[], worldSize: number): T[][] {
  if (!Number.isInteger(worldSize) || worldSize < 1) {
    throw new RangeError(`worldSize must be a positive integer, got ${worldSize}`);
  }
  if (lengths.length !== batch.length) {
    throw new RangeError(`${lengths.length} lengths for ${batch.length} batch items: they must pair up`);
  }
  for (const l of lengths)
    if (!(l >= 0) || !Number.isFinite(l)) throw new RangeError(`invalid token length ${l}`);
  const order = batch
    .map((_, i) => i)
    .sort((a, b) => (lengths[b] as number) - (lengths[a] as number) || a - b);
  const load = new Array<number>(worldSize).fill(0);
  const members: number[][] = Array.from({ length: worldSize }, () => []);
  for (const i of order) {
    let best = 0;
    for (let w = 1; w < worldSize; w++) {
      const dl = (load[w] as number) - (load[best] as number);
      if (dl < 0 || (dl === 0 && (members[w] as number[]).length < (members[best] as number[]).length))
        best = w;
    }
    load[best] = (load[best] as number) + (lengths[i] as number);
    (members[best] as number[]).push(i);
  }
  return members.map((m) => m.sort((a, b) => a - b).map((i) => batch[i] as T));
}
