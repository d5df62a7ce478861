/**
 * The fixed order in which unit gradients are added (step-plan.ts): a binary tree over the unit indices
 * [0, units), where node [lo, hi) is the sum of [lo, mid) and [mid, hi) with mid = floor((lo + hi) / 2). Every
 * process adds along this tree, so a node's value is the same bits wherever it is computed.
 *
 * A process owns some units; it computes the **maximal subtrees** whose units it owns alone (ownedSubtrees), and
 * the collective hands every process every such subtree's sum; each then finishes the tree locally (treeSum with
 * `known`). One process owning every unit computes the root directly: the same additions in the same order.
 */

export interface Subtree {
  readonly lo: number;
  readonly hi: number;
  /** The rank that owns every unit of [lo, hi). */
  readonly owner: number;
}

function split(lo: number, hi: number): number {
  return Math.floor((lo + hi) / 2);
}

/** The maximal single-owner subtrees of the unit tree, in pre-order (the same list on every rank). */
export function ownedSubtrees(owners: readonly number[]): Subtree[] {
  const out: Subtree[] = [];
  const visit = (lo: number, hi: number) => {
    const o = owners[lo]!;
    let alone = true;
    for (let i = lo + 1; i < hi && alone; i++) alone = owners[i] === o;
    if (alone) {
      out.push({ lo, hi, owner: o });
      return;
    }
    const mid = split(lo, hi);
    visit(lo, mid);
    visit(mid, hi);
  };
  if (owners.length > 0) visit(0, owners.length);
  return out;
}

/**
 * The value of node [lo, hi): `known(lo, hi)` when it gives one, else `leaf(lo)` for a single unit, else the sum of
 * its two children. `add` must return a new value (or one of its own making): its inputs may be shared.
 */
export function treeSum<T>(
  lo: number,
  hi: number,
  leaf: (unit: number) => T,
  add: (a: T, b: T) => T,
  known?: (lo: number, hi: number) => T | undefined,
): T {
  const k = known?.(lo, hi);
  if (k !== undefined) return k;
  if (hi - lo === 1) return leaf(lo);
  if (hi - lo < 1) throw new RangeError(`empty unit range [${lo}, ${hi})`);
  const mid = split(lo, hi);
  return add(treeSum(lo, mid, leaf, add, known), treeSum(mid, hi, leaf, add, known));
}
