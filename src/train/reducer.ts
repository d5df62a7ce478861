import { type GradientSums, sumOf } from './gradients.js';
import type { StepPlan } from './step-plan.js';
import { ownedSubtrees, treeSum } from './unit-tree.js';

/** The sums of one subtree [lo, hi) of a plan's units (unit-tree.ts), over the plan's touched parameters. */
export interface SubtreeSums {
  readonly lo: number;
  readonly hi: number;
  readonly sums: GradientSums;
}

/**
 * Turns the subtrees a process computed into the sums of the whole global batch: the trainer's step calls it
 * between forward/backward and the update (Trainer.step). The single process passes `identityReducer`, a worker
 * one backed by the collective (runtime/collective-reducer.ts). Whatever the implementation, the result must be
 * `rootSums` over every subtree of the plan: the same bits at any world size.
 */
export interface GradientReducer {
  reduce(owned: readonly SubtreeSums[], plan: StepPlan): GradientSums | Promise<GradientSums>;
}

/**
 * The root of the plan's unit tree from the sums of a set of subtrees that covers every unit (for example
 * ownedSubtrees over all ranks). A unit no subtree covers is an error naming it.
 */
export function rootSums(subtrees: readonly SubtreeSums[], plan: StepPlan): GradientSums {
  const byRange = new Map(subtrees.map((s) => [`${s.lo}:${s.hi}`, s.sums]));
  return treeSum<GradientSums>(
    0,
    plan.units.length,
    (unit) => {
      throw new Error(`step ${plan.step}: no sums for unit ${unit} (owned by rank ${plan.owners[unit]})`);
    },
    sumOf,
    (lo, hi) => byRange.get(`${lo}:${hi}`),
  );
}

/** One process computes every unit: its subtree is the root. */
export const identityReducer = {
  reduce(owned: readonly SubtreeSums[], plan: StepPlan): GradientSums {
    const cover = ownedSubtrees(plan.owners);
    if (cover.some((c) => c.owner !== cover[0]?.owner)) {
      throw new Error(
        `step ${plan.step} is shared by ${new Set(plan.owners).size} ranks: it needs a collective reducer`,
      );
    }
    return rootSums(owned, plan);
  },
} satisfies GradientReducer;
