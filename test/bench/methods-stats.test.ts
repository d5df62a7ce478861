/** The methods bench's statistics (bench/methods-stats.ts): mean and sample spread over seeds, paired verdicts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatStat, pairedDifferences, pairedVerdict, seedStat } from '../../bench/methods-stats.js';

test('seedStat: mean, sample standard deviation (n - 1), min and max', () => {
  const s = seedStat([4, 1, 3, 2]);
  assert.equal(s.mean, 2.5);
  // sum of squared deviations 5, over n - 1 = 3.
  assert.ok(Math.abs(s.sd! - Math.sqrt(5 / 3)) < 1e-12, String(s.sd));
  assert.deepEqual([s.min, s.max, s.n], [1, 4, 4]);
  assert.deepEqual(s.values, [4, 1, 3, 2]);
  assert.equal(seedStat([7]).sd, null, 'one value has no spread');
  assert.equal(seedStat([3, 3, 3]).sd, 0);
  assert.throws(() => seedStat([]), RangeError);
});

test('pairedVerdict: holds above the spread, does not hold at or below minus it, inconclusive between', () => {
  assert.equal(pairedVerdict([5, 6, 7]), 'holds'); // mean 6, sd 1
  assert.equal(pairedVerdict([-5, -6, -7]), 'does not hold');
  assert.equal(pairedVerdict([0, 0, 0]), 'does not hold', 'no difference at all is not "beats"');
  assert.equal(pairedVerdict([10, -8, 1]), 'inconclusive (difference within spread)'); // mean 1, sd 9
  assert.equal(pairedVerdict([1, -1]), 'inconclusive (difference within spread)');
  assert.equal(pairedVerdict([3]), 'inconclusive (one seed)');
});

test('pairedDifferences: pairs by seed, in seed order, over the seeds both sides have', () => {
  const a = new Map([
    [42, 60],
    [7, 50],
    [1234, 55],
  ]);
  const b = new Map([
    [7, 45],
    [42, 62],
  ]);
  assert.deepEqual(pairedDifferences([42, 7, 1234], a, b), { seeds: [42, 7], differences: [-2, 5] });
});

test('formatStat: mean ± sd, a sign when asked, no spread for one seed', () => {
  assert.equal(formatStat({ mean: 12.345, sd: 1.25 }), '12.3 ± 1.3');
  assert.equal(formatStat({ mean: 2, sd: 0.5 }, true), '+2.0 ± 0.5');
  assert.equal(formatStat({ mean: -2, sd: null }, true), '-2.0');
});
