/**
 * What one training step computes, whatever the number of processes computing it.
 *
 * The global batch of step s (a pure function of the seed and s, mixture-sampler.ts) is cut into **units**: fixed
 * micro-batches, in batch order, of `microBatchSize` examples (the last may be shorter). A unit's composition, and
 * so its padding and its gradient, depend only on (seed, s). The gradient of the batch is the sum of the units'
 * gradients added along one fixed binary tree over the unit indices (unit-tree.ts), so it is the same float32 bits
 * whether one process computes every unit or N processes share them: a process owns whole units, and the
 * collective only moves partial sums of subtrees, never re-associates them.
 */

/** One example of a unit: the task and the index into that task's training set. */
export interface UnitExample {
  readonly task: string;
  readonly index: number;
}

export interface StepPlan {
  /** The update this plan computes (0-based; also the dropout key). */
  readonly step: number;
  /** The global batch cut into units, in batch order. */
  readonly units: readonly (readonly UnitExample[])[];
  /** The rank that computes each unit (all 0 in a single process). */
  readonly owners: readonly number[];
  /** Parameters the batch touches (those the update changes), in the method's parameter order. */
  readonly touched: readonly string[];
}

/** Cuts a global batch into units of `unitSize` examples, in order (the last unit may be shorter). */
export function cutUnits<T>(batch: readonly T[], unitSize: number): T[][] {
  if (!Number.isInteger(unitSize) || unitSize < 1)
    throw new RangeError(`unit size must be a positive integer, got ${unitSize}`);
  const units: T[][] = [];
  for (let i = 0; i < batch.length; i += unitSize) units.push(batch.slice(i, i + unitSize));
  return units;
}
