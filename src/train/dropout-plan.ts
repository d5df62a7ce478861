import { hash32 } from '../data/rng.js';
import type { DropoutPlan } from '../model/t5/index.js';

/**
 * The dropout a training step applies to a list of examples. An example's key is hash32(seed, 'dropout', step,
 * its identity `task/split/index`), and every mask of the example is a pure function of that key (dropout.ts), so:
 * - the single-process trainer and N workers draw the same masks for step s, however the global batch is sharded
 *   and cut into micro-batches;
 * - a step retried after a membership change is the same step;
 * - the same example at another step gets fresh masks.
 * A global batch that holds one example twice (a task smaller than its share of a batch, so two of its epochs meet
 * in one step) gives both copies the same masks: the worker protocol names examples by (task, index) only.
 * Undefined when the rate is 0 (no dropout: the exact evaluation-mode forward pass).
 */
export function dropoutPlan(
  rate: number,
  seed: number,
  step: number,
  examples: readonly { key: string }[],
): DropoutPlan | undefined {
  if (rate === 0) return undefined;
  return { rate, exampleKeys: examples.map((e) => hash32(seed, 'dropout', step, e.key)) };
}
