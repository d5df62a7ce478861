import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CursorMismatchError,
  MixtureSampler,
  mixtureProbabilities,
  type SampledExample,
  shardByTokens,
} from '../../src/data/index.js';

const TASKS = [
  { name: 'mnli', size: 5000 },
  { name: 'sst2', size: 3000 },
  { name: 'rte', size: 7 },
  { name: 'qnli', size: 2000 },
];
const key = (b: SampledExample[]) => b.map((e) => `${e.task}:${e.index}`).join(' ');

describe('mixture probabilities', () => {
  it('examples-proportional, cap K, temperature T (hand values)', () => {
    assert.deepEqual(mixtureProbabilities([9000, 1000]), [0.9, 0.1]);
    // T = 2: p ∝ sqrt(0.9), sqrt(0.1) = 3·sqrt(0.1), sqrt(0.1) -> 3/4, 1/4
    const t2 = mixtureProbabilities([9000, 1000], { temperature: 2 });
    assert.ok(Math.abs((t2[0] as number) - 0.75) < 1e-12 && Math.abs((t2[1] as number) - 0.25) < 1e-12);
    // K = 1000 caps the big task: equal shares
    assert.deepEqual(mixtureProbabilities([100000, 1000, 1000], { cap: 1000 }), [1 / 3, 1 / 3, 1 / 3]);
    assert.throws(() => mixtureProbabilities([0, 0]), /every task in the mixture is empty/);
    assert.throws(() => mixtureProbabilities([1], { temperature: 0 }), /temperature/);
  });
});

describe('MixtureSampler', () => {
  it('is deterministic in (seed, step) and globalBatch(s) needs no replay', () => {
    const a = new MixtureSampler(TASKS, { batchSize: 16, seed: 7 });
    const b = new MixtureSampler(TASKS, { batchSize: 16, seed: 7 });
    const seq: string[] = [];
    for (let s = 0; s < 60; s++) seq.push(key(a.next()));
    // A fresh sampler asked for step 59 directly, then steps out of order, gives the same batches.
    assert.equal(key(b.globalBatch(59)), seq[59]);
    for (const s of [33, 0, 12, 58, 1]) assert.equal(key(b.globalBatch(s)), seq[s]);
    assert.notEqual(key(new MixtureSampler(TASKS, { batchSize: 16, seed: 8 }).globalBatch(3)), seq[3]);
    assert.equal(a.globalBatch(1000).length, 16);
  });

  it('consumedBefore matches the counts of the batches actually drawn', () => {
    const s = new MixtureSampler(TASKS, { batchSize: 10, seed: 3 });
    const counts = [0, 0, 0, 0];
    for (let step = 0; step < 80; step++) {
      assert.deepEqual(s.consumedBefore(step), counts, `step ${step}`);
      for (const e of s.globalBatch(step)) counts[e.taskIndex] = (counts[e.taskIndex] as number) + 1;
    }
  });

  it('draws without replacement within each task epoch, with a new order each epoch', () => {
    const s = new MixtureSampler(TASKS, { batchSize: 64, seed: 11, temperature: 4 });
    const rte: number[] = [];
    for (let step = 0; step < 40; step++)
      for (const e of s.globalBatch(step)) if (e.task === 'rte') rte.push(e.index);
    assert.ok(rte.length >= 21, `only ${rte.length} rte draws`);
    const epochs: string[] = [];
    for (let i = 0; i + 7 <= rte.length; i += 7) {
      const block = rte.slice(i, i + 7);
      assert.deepEqual([...block].sort(), [0, 1, 2, 3, 4, 5, 6], `epoch ${i / 7} is a permutation`);
      epochs.push(block.join(','));
    }
    assert.ok(new Set(epochs).size > 1, 'epochs are reshuffled');
  });

  it('follows the mixture proportions (chi-square with a fixed seed)', () => {
    const tasks = [
      { name: 'a', size: 5000 },
      { name: 'b', size: 3000 },
      { name: 'c', size: 2000 },
    ];
    const s = new MixtureSampler(tasks, { batchSize: 32, seed: 42 });
    const n = [0, 0, 0];
    for (let step = 0; step < 300; step++)
      for (const e of s.next()) n[e.taskIndex] = (n[e.taskIndex] as number) + 1;
    const total = 300 * 32;
    const chi2 = s.probabilities.reduce(
      (acc, p, i) => acc + ((n[i] as number) - p * total) ** 2 / (p * total),
      0,
    );
    // 13.8 is the 0.999 quantile of chi-square with 2 degrees of freedom.
    assert.ok(chi2 < 13.8, `chi2 ${chi2} counts ${n}`);
    // Each batch mixes tasks (no task-homogeneous batches): a batch of 32 holds all three tasks.
    const kinds = new Set(s.globalBatch(5).map((e) => e.task));
    assert.equal(kinds.size, 3);
  });

  it('cap and temperature shift the observed shares toward small tasks', () => {
    const tasks = [
      { name: 'big', size: 90000 },
      { name: 'small', size: 1000 },
    ];
    const share = (opts: { cap?: number; temperature?: number }) => {
      const s = new MixtureSampler(tasks, { batchSize: 50, seed: 5, ...opts });
      let small = 0;
      for (let step = 0; step < 40; step++)
        for (const e of s.globalBatch(step)) if (e.task === 'small') small++;
      return small / 2000;
    };
    const plain = share({});
    const capped = share({ cap: 1000 });
    const hot = share({ temperature: 3 });
    // Expected 1/91 ≈ 0.011, 0.5 with the cap, and 1000^(1/3)/(90000^(1/3)+1000^(1/3)) ≈ 0.183 with T = 3.
    assert.ok(Math.abs(plain - 1 / 91) < 0.01, `plain ${plain}`);
    assert.ok(Math.abs(capped - 0.5) < 0.02, `capped ${capped}`);
    assert.ok(Math.abs(hot - 10 / (10 + 90000 ** (1 / 3))) < 0.02, `hot ${hot}`);
  });

  it('resumes exactly mid-epoch from a serialised cursor', () => {
    const opts = { batchSize: 24, seed: 99, cap: 2500, temperature: 2 };
    const straight = new MixtureSampler(TASKS, opts);
    for (let i = 0; i < 37; i++) straight.next();
    const json = JSON.stringify(straight.cursor());
    const expected: string[] = [];
    for (let i = 0; i < 50; i++) expected.push(key(straight.next()));

    const first = new MixtureSampler(TASKS, opts);
    for (let i = 0; i < 37; i++) first.next();
    assert.equal(JSON.stringify(first.cursor()), json);
    const cursor = JSON.parse(json);
    assert.equal(cursor.step, 37);
    // rte (7 examples) is mid-epoch at step 37 in this run: the cursor resumes inside an epoch.
    assert.notEqual(cursor.consumed[2] % 7, 0);
    const resumed = MixtureSampler.fromCursor(TASKS, cursor);
    const got: string[] = [];
    for (let i = 0; i < 50; i++) got.push(key(resumed.next()));
    assert.deepEqual(got, expected);
    assert.ok(json.length < 400, `cursor is small (${json.length} bytes)`);

    const changed = TASKS.map((t) => (t.name === 'rte' ? { ...t, size: 8 } : t));
    assert.throws(() => MixtureSampler.fromCursor(changed, cursor), CursorMismatchError);
    assert.throws(() => MixtureSampler.fromCursor(TASKS, { ...cursor, consumed: [0, 0, 0, 0] }), /consumed/);
  });
});

describe('shardByTokens', () => {
  it('balances tokens greedily, longest first, deterministically', () => {
    const batch = ['a', 'b', 'c', 'd', 'e', 'f'];
    const lengths = [10, 1, 9, 1, 8, 1];
    // a(10)->w0, c(9)->w1, e(8)->w2; then the 1s in batch order: b -> w2 (load 8), d -> w1 (9, one item, beats
    // w2's 9 with two items), f -> w2 (9). Loads 10/10/10; each shard lists its items in batch order.
    const shards = shardByTokens(batch, lengths, 3);
    assert.deepEqual(shards, [['a'], ['c', 'd'], ['b', 'e', 'f']]);
    assert.deepEqual(shardByTokens(batch, lengths, 3), shards);
  });

  it('never leaves a worker empty when batch >= world size, even with zero lengths', () => {
    const shards = shardByTokens([1, 2, 3, 4], [0, 0, 0, 0], 4);
    assert.ok(shards.every((s) => s.length === 1));
    const big = Array.from({ length: 37 }, (_, i) => i);
    const lens = big.map((i) => (i * 7919) % 113);
    const s8 = shardByTokens(big, lens, 8);
    assert.ok(s8.every((s) => s.length > 0));
    assert.deepEqual(
      s8.flat().sort((x, y) => x - y),
      big,
    );
    const loads = s8.map((s) => s.reduce((acc, i) => acc + (lens[i] as number), 0));
    // Greedy LPT: the spread is at most the longest item.
    assert.ok(Math.max(...loads) - Math.min(...loads) <= Math.max(...lens));
    assert.throws(() => shardByTokens([1], [1, 2], 1), /must pair up/);
  });
});
