/**
 * The exact reduction (train/step-plan.ts, unit-tree.ts, reducer.ts, runtime/collective-reducer.ts) on synthetic
 * unit sums: however the units are spread over ranks, the sums of the whole batch are the same bits as one
 * process adding every unit, through the identity reducer and through real communicators (gRPC, in this process).
 * A naive per-rank sum followed by a sum over ranks is shown to differ on the same data, so the tests can fail.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createCollective, GrpcTransport } from '../../src/collective/index.js';
import { demoJob } from '../../src/config/demo-job.js';
import { CollectiveReducer } from '../../src/runtime/collective-reducer.js';
import { planStep } from '../../src/runtime/coordinator/step-planner.js';
import { denseSums, type GradientSums, sumOf } from '../../src/train/gradients.js';
import { identityReducer, rootSums, type SubtreeSums } from '../../src/train/reducer.js';
import { cutUnits, type StepPlan } from '../../src/train/step-plan.js';
import { ownedSubtrees, treeSum } from '../../src/train/unit-tree.js';

const SIZES: Record<string, number> = { a: 37, b: 5, c: 129 };

/** A deterministic pseudo-random generator (mulberry32). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Unit sums with values over many magnitudes (so float32 addition order shows), some -0 and absent tensors. */
function unitSums(units: number, touched: string[], seed: number): GradientSums[] {
  const r = rng(seed);
  return Array.from({ length: units }, (_, u) => {
    const grads = new Map<string, Float32Array>();
    for (const name of touched) {
      if (u % 3 === 2 && name === 'b') continue; // a unit that does not touch 'b'
      const g = new Float32Array(SIZES[name]!);
      for (let i = 0; i < g.length; i++) g[i] = (r() - 0.5) * 10 ** Math.floor(r() * 8 - 4);
      g[0] = -0;
      grads.set(name, g);
    }
    return denseSums(
      { grads, nllSum: Math.fround(r() * 100), tokens: 1 + Math.floor(r() * 50), perTask: new Map() },
      touched,
      (n) => SIZES[n]!,
    );
  });
}

function plan(units: number, owners: number[]): StepPlan {
  return {
    step: 3,
    units: Array.from({ length: units }, (_, i) => [{ task: 't', index: i }]),
    owners,
    touched: ['a', 'b', 'c'],
  };
}

/** What rank `rank` computes: the sums of its maximal subtrees (Trainer.ownedSums on synthetic units). */
function owned(p: StepPlan, leaves: GradientSums[], rank: number): SubtreeSums[] {
  return ownedSubtrees(p.owners)
    .filter((t) => t.owner === rank)
    .map((t) => ({ lo: t.lo, hi: t.hi, sums: treeSum(t.lo, t.hi, (u) => leaves[u]!, sumOf) }));
}

function bytes(s: GradientSums): Buffer {
  const parts = [...s.grads.values()].map((g) => Buffer.from(g.buffer, g.byteOffset, g.byteLength));
  parts.push(Buffer.from(Float32Array.of(s.nllSum, s.tokens).buffer));
  return Buffer.concat(parts);
}

/** Owner assignments of `units` units over `ranks` ranks: contiguous, round-robin and random. */
function assignments(units: number, ranks: number, seed: number): number[][] {
  const r = rng(seed);
  return [
    Array.from({ length: units }, (_, i) => Math.floor((i * ranks) / units)),
    Array.from({ length: units }, (_, i) => i % ranks),
    Array.from({ length: units }, () => Math.floor(r() * ranks)),
  ];
}

describe('exact reduction', () => {
  test('ownedSubtrees covers every unit once, with maximal single-owner subtrees', () => {
    assert.deepEqual(ownedSubtrees([0, 0, 0, 0]), [{ lo: 0, hi: 4, owner: 0 }]);
    assert.deepEqual(ownedSubtrees([0, 0, 1, 1]), [
      { lo: 0, hi: 2, owner: 0 },
      { lo: 2, hi: 4, owner: 1 },
    ]);
    for (const owners of assignments(13, 4, 1)) {
      const cover = ownedSubtrees(owners);
      const seen = new Array(13).fill(0);
      for (const c of cover) for (let i = c.lo; i < c.hi; i++) seen[i] += owners[i] === c.owner ? 1 : 100;
      assert.deepEqual(seen, new Array(13).fill(1), JSON.stringify(cover));
    }
  });

  test('any spread of the units over ranks gives the single process bits; a naive sum does not', () => {
    let naiveDiffers = false;
    for (const units of [1, 2, 5, 8, 13]) {
      const leaves = unitSums(units, ['a', 'b', 'c'], units);
      const single = bytes(
        identityReducer.reduce(
          owned(plan(units, new Array(units).fill(0)), leaves, 0),
          plan(units, new Array(units).fill(0)),
        ),
      );
      for (const ranks of [2, 3, 4]) {
        for (const owners of assignments(units, ranks, units * 10 + ranks)) {
          const p = plan(units, owners);
          const all = [0, 1, 2, 3].flatMap((r) => owned(p, leaves, r));
          assert.ok(bytes(rootSums(all, p)).equals(single), `${units} units, owners ${owners}`);
          // What the runtime did before: each rank adds its units in order, then the ranks' sums are added.
          const perRank = [0, 1, 2, 3]
            .map((r) => leaves.filter((_, i) => owners[i] === r))
            .filter((l) => l.length > 0)
            .map((l) => l.reduce((a, b) => sumOf(a, b)));
          if (!bytes(perRank.reduce((a, b) => sumOf(a, b))).equals(single)) naiveDiffers = true;
        }
      }
    }
    assert.ok(naiveDiffers, 'the data should be one where float32 addition order matters');
  });

  test('the identity reducer refuses a plan shared by several ranks', () => {
    const p = plan(2, [0, 1]);
    assert.throws(
      () => identityReducer.reduce(owned(p, unitSums(2, ['a', 'b', 'c'], 5), 0), p),
      /needs a collective/,
    );
  });

  test('CollectiveReducer over 3 real gRPC communicators gives every rank the single process bits', async () => {
    const units = 7;
    const leaves = unitSums(units, ['a', 'b', 'c'], 77);
    const single = bytes(
      rootSums(
        owned(plan(units, new Array(units).fill(0)), leaves, 0),
        plan(units, new Array(units).fill(0)),
      ),
    );
    const listeners = await Promise.all(
      [0, 1, 2].map(() => GrpcTransport.listen({ host: '127.0.0.1', port: 0 })),
    );
    const peers = listeners.map((t, rank) => ({ rank, address: t.address }));
    const comms = await Promise.all(
      peers.map((_, rank) =>
        createCollective({
          rank,
          peers,
          jobId: 'exact',
          generation: 1,
          timeoutMs: 5000,
          listener: listeners[rank]!,
        }),
      ),
    );
    try {
      for (const owners of assignments(units, 3, 9)) {
        const p = plan(units, owners);
        const reducers = comms.map((c) => new CollectiveReducer(c, (n) => SIZES[n]!));
        const out = await Promise.all(reducers.map((r, rank) => r.reduce(owned(p, leaves, rank), p)));
        for (const [rank, o] of out.entries())
          assert.ok(bytes(o).equals(single), `rank ${rank}, owners ${owners}`);
        // One slot per subtree: the payload the cost figures in docs/collective.md refer to.
        const width = Object.values(SIZES).reduce((a, b) => a + b, 0) + 2;
        assert.equal(reducers[0]!.lastBytes, ownedSubtrees(owners).length * width * 4);
      }
    } finally {
      await Promise.all(comms.map((c) => c.close()));
    }
  });

  test('the planner cuts the demo batch into the trainer units and balances whole units by padded tokens', () => {
    const job = demoJob({ steps: 2 });
    const stage = job.stages[0]!;
    const batch = Array.from({ length: 32 }, (_, i) => ({
      task: stage.tasks[i % 3]!,
      index: i,
      taskIndex: i % 3,
      epoch: 0,
    }));
    const lengths = batch.map((_, i) => 5 + (i % 7));
    for (const world of [1, 2, 3]) {
      const pl = planStep(stage, batch, (e) => lengths[e.index]!, world);
      assert.deepEqual(
        pl.units,
        cutUnits(batch, stage.train.microBatchSize).map((u) => u.map((e) => [e.task, e.index])),
      );
      assert.equal(pl.owners.length, 2);
      assert.deepEqual([...new Set(pl.owners)].length, Math.min(world, 2));
      assert.equal(pl.loads.length, world);
      assert.ok(pl.touched.length > 0 && pl.touched.every((n) => n.startsWith('prompt')), pl.touched.join());
    }
  });
});
