/** The serving batcher: what starts a pass, what shares one, and what a failing pass does to its requests. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DynamicBatcher } from '../../src/serve/index.js';

function recorder() {
  const passes: number[][] = [];
  const run = (items: readonly number[]) => {
    passes.push([...items]);
    return items.map((x) => x * 10);
  };
  return { passes, run };
}

test('concurrent requests share a pass; each gets its own rows back, in order', async () => {
  const { passes, run } = recorder();
  const b = new DynamicBatcher(run, { maxBatch: 8, maxWaitMs: 20 });
  const outs = await Promise.all([b.submit([1, 2]), b.submit([3]), b.submit([4, 5, 6])]);
  assert.deepEqual(outs, [[10, 20], [30], [40, 50, 60]]);
  assert.deepEqual(passes, [[1, 2, 3, 4, 5, 6]]);
});

test('maxBatch rows start a pass at once; a request is never split; a leftover waits until its own deadline', async () => {
  const { passes, run } = recorder();
  const b = new DynamicBatcher(run, { maxBatch: 4, maxWaitMs: 300 });
  const t0 = performance.now();
  const first = b.submit([1, 2, 3]);
  const second = b.submit([4, 5]);
  assert.deepEqual(await first, [10, 20, 30]);
  const full = performance.now() - t0;
  assert.ok(full < 250, `a full batch waited ${full.toFixed(0)} ms for the timer`);
  // [4, 5] would have made the first pass 5 rows: it waits for more until 300 ms after it arrived, no longer.
  assert.deepEqual(await second, [40, 50]);
  const leftover = performance.now() - t0;
  assert.ok(leftover >= 290 && leftover < 1500, `the leftover ran after ${leftover.toFixed(0)} ms`);
  assert.deepEqual(passes, [
    [1, 2, 3],
    [4, 5],
  ]);
});

test('a failing pass rejects its requests only; the next pass runs', async () => {
  let calls = 0;
  const b = new DynamicBatcher(
    (items: readonly number[]) => {
      calls++;
      if (items.includes(-1)) throw new Error('bad row');
      return items.map((x) => x + 1);
    },
    { maxBatch: 2, maxWaitMs: 5 },
  );
  const bad = b.submit([-1, 0]);
  const good = b.submit([5]);
  await assert.rejects(bad, /bad row/);
  assert.deepEqual(await good, [6]);
  assert.equal(calls, 2);
  assert.equal(b.waiting, 0);
});
