import type { Collective } from '../collective/index.js';
import { fuse, planLayout, unfuse } from '../collective/index.js';
import type { GradientSums } from '../train/gradients.js';
import { type GradientReducer, rootSums, type SubtreeSums } from '../train/reducer.js';
import type { StepPlan } from '../train/step-plan.js';
import { ownedSubtrees } from '../train/unit-tree.js';

/**
 * The workers' reducer: an all-gather of subtree sums, then the same tree sum on every rank (train/reducer.ts).
 *
 * The buffer has one slot per maximal single-owner subtree of the plan (ownedSubtrees, the same list on every
 * rank); a slot is the subtree's gradients in the fused layout of the touched parameters (fusion.ts), then its loss
 * sum and token count. Each rank fills its own slots and leaves the others +0, and the buffer is all-reduced with
 * `sum`: every slot then holds its owner's values exactly (x + 0 = x; the unit sums carry no -0), whatever order
 * the ring or halving-doubling adds in. Each rank then finishes the unit tree from the slots, as one process
 * would from its units. The price is bytes: the payload is (slots x touched parameters) instead of one copy,
 * small for prompt-sized gradients (see docs/collective.md for the measured cost).
 */
export class CollectiveReducer implements GradientReducer {
  /** Bytes all-reduced by the last call. */
  lastBytes = 0;

  constructor(
    private readonly collective: Collective,
    private readonly sizeOf: (name: string) => number,
  ) {}

  async reduce(owned: readonly SubtreeSums[], plan: StepPlan): Promise<GradientSums> {
    const rank = this.collective.rank;
    const layout = planLayout(plan.touched, (name) => this.sizeOf(name));
    const width = layout.totalElements + 2;
    const slots = ownedSubtrees(plan.owners);
    const buffer = new Float32Array(slots.length * width);
    const mine = new Map(owned.map((o) => [`${o.lo}:${o.hi}`, o.sums]));
    slots.forEach((slot, k) => {
      if (slot.owner !== rank) return;
      const sums = mine.get(`${slot.lo}:${slot.hi}`);
      if (!sums)
        throw new Error(`step ${plan.step}: rank ${rank} has no sums for its units [${slot.lo}, ${slot.hi})`);
      const base = k * width;
      buffer.set(fuse(sums.grads, plan.touched).buffer, base);
      buffer[base + layout.totalElements] = sums.nllSum;
      buffer[base + layout.totalElements + 1] = sums.tokens;
    });
    this.lastBytes = buffer.byteLength;
    const reduced = await this.collective.allReduce(buffer, { step: plan.step, op: 'sum' });
    const gathered: SubtreeSums[] = slots.map((slot, k) => {
      const base = k * width;
      const views = unfuse(reduced.subarray(base, base + layout.totalElements), layout);
      const own = slot.owner === rank ? mine.get(`${slot.lo}:${slot.hi}`) : undefined;
      return {
        lo: slot.lo,
        hi: slot.hi,
        sums: {
          // The plan's order, not the layout's (sorted): the update and its gradient norm iterate it.
          grads: new Map(plan.touched.map((name) => [name, views.get(name)!])),
          nllSum: reduced[base + layout.totalElements]!,
          tokens: reduced[base + layout.totalElements + 1]!,
          perTask: own?.perTask ?? new Map(),
        },
      };
    });
    return rootSums(gathered, plan);
  }
}
