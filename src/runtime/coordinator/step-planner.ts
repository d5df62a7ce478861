import type { StageConfig } from '../../config/job-config.js';
import type { PlannedExample } from '../../control/protocol.js';
import type { SampledExample } from '../../data/mixture-sampler.js';
import { shardByTokens } from '../../data/shard-by-tokens.js';
import { methodFactory, touchedParamNames } from '../../methods/index.js';
import { cutUnits } from '../../train/step-plan.js';

/** A step's plan as the coordinator publishes it (StepMsg without the envelope). */
export interface PlannedStep {
  units: PlannedExample[][];
  owners: number[];
  touched: string[];
  /** Padded source tokens (unit size x longest source) each rank computes: the balance the shards keep. */
  loads: number[];
}

/**
 * Planning step s (step protocol, coordinator side), a pure function of its inputs:
 * 1. The global batch s (drawn by the caller from the mixture: a pure function of (seed, s), so a retried step
 *    sees the same batch) is cut into units of microBatchSize examples, in batch order: the units, their padding
 *    and the order they are added in do not depend on the number of workers (train/step-plan.ts).
 * 2. The units are shared among `worldSize` ranks balancing padded source tokens (longest first, shard-by-tokens.ts):
 *    whole units only, so a rank computes exactly what a single process computes for them.
 * 3. The parameters the batch touches are named in the method's parameter order (the reduction's layout), so no
 *    negotiation is needed.
 * `sourceLength(example)` is the example's tokenized source length.
 */
export function planStep(
  stage: StageConfig,
  batch: readonly SampledExample[],
  sourceLength: (e: SampledExample) => number,
  worldSize: number,
): PlannedStep {
  const units = cutUnits(batch, stage.train.microBatchSize);
  const cost = units.map((u) => u.length * Math.max(...u.map(sourceLength)));
  const shards = shardByTokens(
    units.map((_, i) => i),
    cost,
    worldSize,
  );
  const owners = new Array<number>(units.length).fill(0);
  const loads = shards.map((s) => s.reduce((a, i) => a + cost[i]!, 0));
  shards.forEach((s, rank) => {
    for (const i of s) owners[i] = rank;
  });
  return {
    units: units.map((u) => u.map((b): PlannedExample => [b.task, b.index])),
    owners,
    touched: touchedParams(stage, [...new Set(batch.map((b) => b.task))]),
    loads,
  };
}

/** The stage method's trainable tensors a batch with these tasks touches, in the method's parameter order. */
export function touchedParams(stage: StageConfig, present: readonly string[]): string[] {
  const { name, ...options } = stage.method;
  const f = methodFactory(name);
  const specs = f.describe(f.parseConfig(options), { dModel: 0, vocabSize: 0, tasks: stage.tasks });
  // The methods' own rule (touched-params.ts), applied to describe(), which gives the parameters' order.
  return touchedParamNames(specs, present);
}
