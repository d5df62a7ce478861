/**
 * gatherRows: the row gather every method uses, with a gradient whose order is fixed on every backend. Checked
 * against the plain sum it must equal, including a one-row table (a per-task prompt trained on a single task:
 * tf.oneHot refuses depth 1, which crashed that job's first step on the native backend).
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { gatherRows } from '../../src/methods/gather-rows.js';
import { testBackend } from '../helpers/backend.js';

before(async () => {
  await selectBackend({ requested: testBackend(), log: () => {} });
});

/** d/dx sum(w * x[indices]) computed by hand: row r gets the sum of w over the positions that chose r. */
function expectedGrad(rows: number, cols: number, indices: number[], w: number[][]): number[][] {
  const g = Array.from({ length: rows }, () => new Array<number>(cols).fill(0));
  indices.forEach((r, i) => {
    for (let c = 0; c < cols; c++) g[r]![c]! += w[i]![c]!;
  });
  return g;
}

for (const [rows, indices] of [
  [1, [0, 0, 0]],
  [4, [2, 0, 2, 3]],
] as const) {
  test(`gradient of a ${rows}-row table gathered at [${indices}] sums each row's picks`, () => {
    const cols = 3;
    const w = indices.map((_, i) => [i + 1, 0.5 * i, -i]);
    const x = tf.variable(tf.randomNormal([rows, cols], 0, 1, 'float32', 1) as tf.Tensor2D);
    const idx = tf.tensor1d([...indices], 'int32');
    const wt = tf.tensor2d(w);
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(gatherRows(x, idx), wt)) as tf.Scalar, [x]);
    const grad = grads[x.name]!.arraySync() as number[][];
    assert.deepEqual(
      grad.map((r) => r.map((v) => Math.round(v * 1e6) / 1e6)),
      expectedGrad(rows, cols, [...indices], w),
    );
    tf.dispose([value, grads[x.name]!]);
    assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
    tf.dispose([x, idx, wt]);
  });
}
