/**
 * The lean backward pass (src/backend/lean-backprop.ts) frees each node's output gradients and saved tensors as
 * soon as the node is processed. It must give bit-identical gradients to tfjs-core's own pass, leak nothing, and
 * lower the peak memory of a backward pass through the T5 model.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { installLeanBackprop, selectBackend } from '../../src/backend/index.js';
import { makeTinyT5 } from '../../src/model/checkpoint/index.js';
import { T5Model } from '../../src/model/t5/index.js';
import { testBackend } from '../helpers/backend.js';

let model: T5Model;
let batch: {
  inputsEmbeds: tf.Tensor3D;
  attentionMask: tf.Tensor2D;
  labels: tf.Tensor2D;
  labelMask: tf.Tensor2D;
};

before(async () => {
  await selectBackend({ requested: testBackend() });
  const { config, tensors } = makeTinyT5({
    variant: 'v1',
    vocabSize: 96,
    dModel: 32,
    dKv: 8,
    numHeads: 4,
    dFf: 64,
    numLayers: 2,
    seed: 3,
  });
  model = T5Model.fromWeights(config, tensors);
  const B = 3;
  const L = 7;
  const T = 5;
  batch = {
    inputsEmbeds: model.embed(
      tf.tensor2d(
        Int32Array.from({ length: B * L }, (_, i) => 2 + ((i * 31) % 90)),
        [B, L],
        'int32',
      ),
    ),
    attentionMask: tf.tensor2d([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1], [B, L]),
    labels: tf.tensor2d(
      Int32Array.from({ length: B * T }, (_, i) => 2 + ((i * 17) % 90)),
      [B, T],
      'int32',
    ),
    labelMask: tf.tensor2d([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1], [B, T]),
  };
});
after(() => {
  model.dispose();
  tf.dispose(Object.values(batch));
});

/** Gradients of the loss with respect to the input embeddings and a prompt-like variable, as raw bits. */
async function run(): Promise<{ bits: Uint32Array[]; peak: number; leaked: number }> {
  const prompt = tf.variable(tf.randomNormal([2, 32], 0, 1, 'float32', 9));
  const before = tf.memory().numTensors;
  let grads: Uint32Array[] = [];
  const info = await tf.profile(() => {
    const { value, grads: g } = tf.variableGrads(() => {
      const p = tf.tile(tf.expandDims(prompt, 0), [3, 1, 1]);
      const e = tf.concat([p, batch.inputsEmbeds], 1) as tf.Tensor3D;
      const mask = tf.concat([tf.ones([3, 2]), batch.attentionMask], 1) as tf.Tensor2D;
      return model.loss({ ...batch, inputsEmbeds: e, attentionMask: mask });
    }, [prompt]);
    grads = [new Uint32Array((g[prompt.name]!.dataSync() as Float32Array).buffer.slice(0))];
    const dE = tf.grad((e: tf.Tensor) => model.loss({ ...batch, inputsEmbeds: e as tf.Tensor3D }))(
      batch.inputsEmbeds,
    );
    grads.push(new Uint32Array((dE.dataSync() as Float32Array).buffer.slice(0)));
    tf.dispose([value, dE, ...Object.values(g)]);
  });
  const leaked = tf.memory().numTensors - before;
  prompt.dispose();
  return { bits: grads, peak: info.peakBytes, leaked };
}

test('bit-identical to the stock backward pass, no tensor left behind, lower peak memory', async () => {
  await run(); // warm-up: the model caches its position biases on the first forward pass
  const lean = await run();
  const uninstall = installLeanBackprop();
  uninstall();
  let stock: Awaited<ReturnType<typeof run>>;
  try {
    stock = await run();
  } finally {
    installLeanBackprop();
  }
  assert.equal(lean.bits.length, 2);
  for (const [i, b] of lean.bits.entries()) assert.deepEqual(b, stock.bits[i], `gradient ${i} differs`);
  assert.equal(lean.leaked, 0, 'tensors leaked by the lean pass');
  assert.equal(stock.leaked, 0, 'tensors leaked by the stock pass');
  assert.ok(lean.peak < stock.peak, `peak ${lean.peak} B (lean) vs ${stock.peak} B (stock)`);
});

test('higher-order gradients still work (they take the stock pass)', () => {
  const x = tf.scalar(3);
  const d2 = tf.grad((v: tf.Tensor) => tf.grad((u: tf.Tensor) => tf.mul(tf.mul(u, u), u))(v))(x);
  assert.equal(d2.dataSync()[0], 18); // d2/dx2 x^3 = 6x
  tf.dispose([x, d2]);
});
