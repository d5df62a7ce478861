/**
 * Training-mode dropout of the frozen T5 (issue 12 item 4): where it applies, that its masks are a pure function of
 * (example key, site, coordinates), that gradients flow through it, and that rate 0 is the evaluation-mode pass.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { makeTinyT5, type TinyT5Options } from '../../src/model/checkpoint/index.js';
import {
  applyDropout,
  batchedAttention,
  type DropoutPlan,
  keepFlags,
  type Seq2SeqBatch,
  splitHeadAttention,
  T5Model,
} from '../../src/model/t5/index.js';
import { testBackend } from '../helpers/backend.js';

const V1: TinyT5Options = { variant: 'v1', seed: 7, vocabSize: 64 };
const V11: TinyT5Options = { variant: 'v1.1', seed: 7, vocabSize: 64 };

/** Rows [length] of example b of a [B, L, width] flag array. */
function rowsOf(flags: Uint8Array, b: number, L: number, width: number, length: number): Uint8Array {
  return flags.slice(b * L * width, (b * L + length) * width);
}

describe('dropout masks (keepFlags)', () => {
  const plan = (keys: number[], rate = 0.1): DropoutPlan => ({ rate, exampleKeys: keys });

  test('drop a rate share of the units, independently of the site and the example', () => {
    for (const rate of [0.1, 0.5]) {
      const f = keepFlags(plan([1, 2, 3, 4], rate), 'encoder.0.ff.hidden', [100], 1000);
      const dropped = f.reduce((a, x) => a + (1 - x), 0) / f.length;
      const sigma = Math.sqrt((rate * (1 - rate)) / f.length);
      assert.ok(Math.abs(dropped - rate) < 5 * sigma, `rate ${rate}: dropped ${dropped}`);
    }
    assert.ok(
      keepFlags(plan([1], 0), 's', [50], 50).every((x) => x === 1),
      'rate 0 keeps everything',
    );
    const a = keepFlags(plan([1]), 'encoder.0.self.out', [20], 64);
    const b = keepFlags(plan([1]), 'encoder.1.self.out', [20], 64);
    const c = keepFlags(plan([2]), 'encoder.0.self.out', [20], 64);
    // Two independent masks at rate 0.1 agree on ~82% of units; identical ones on all.
    const agree = (x: Uint8Array, y: Uint8Array) =>
      x.reduce((n, v, i) => n + (v === y[i] ? 1 : 0), 0) / x.length;
    assert.ok(agree(a, b) < 0.9, 'another layer gets another mask');
    assert.ok(agree(a, c) < 0.9, 'another example gets another mask');
  });

  test("an example's mask does not depend on its neighbours, its row in the batch or the padded length", () => {
    const width = 12;
    const alone = keepFlags(plan([77]), 'decoder.1.cross.out', [5], width);
    const inBatch = keepFlags(plan([5, 77, 9]), 'decoder.1.cross.out', [9], width);
    assert.deepEqual(rowsOf(inBatch, 1, 9, width, 5), alone);
    // Attention probabilities [H, Lq] x Lk: a longer padded key axis or query axis keeps the real entries' flags.
    const H = 2;
    const short = keepFlags(plan([77]), 'encoder.0.self.probs', [H, 4], 4);
    const long = keepFlags(plan([3, 77]), 'encoder.0.self.probs', [H, 7], 7);
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < 4; i++) {
        for (let j = 0; j < 4; j++) {
          assert.equal(long[((1 * H + h) * 7 + i) * 7 + j], short[(h * 4 + i) * 4 + j], `(${h}, ${i}, ${j})`);
        }
      }
    }
  });
});

// The wasm pass covers wasm and the pure-JS cpu backend; the native pass (PROMPTMESH_TEST_BACKEND=node) the binding.
const BACKENDS = testBackend() === 'wasm' ? (['wasm', 'cpu'] as const) : ([testBackend()] as const);
for (const backend of BACKENDS) {
  describe(`T5 dropout on the ${backend} backend`, () => {
    before(async () => {
      await selectBackend({ requested: backend });
    });

    test('applyDropout scales kept units by 1/(1-p), zeroes the rest, and its gradient is the same mask', () => {
      tf.tidy(() => {
        const x = tf.tensor1d([1, 2, 3, 4]);
        const keep = tf.tensor1d([1, 0, 1, 0], 'bool');
        assert.deepEqual(Array.from(applyDropout(x, keep, 0.2).dataSync()), [1.25, 0, 3.75, 0]);
        const g = tf.grad((t: tf.Tensor) =>
          tf.sum(tf.mul(applyDropout(t, keep, 0.2), tf.tensor1d([1, 2, 3, 4]))),
        )(x);
        assert.deepEqual(Array.from(g.dataSync()), [1.25, 0, 3.75, 0]);
      });
    });

    test('attention dropout: split-head equals batched and the dense formula, values and gradients', () => {
      tf.tidy(() => {
        const [B, H, Lq, Lk, dk] = [2, 3, 5, 7, 4];
        const q = tf.randomNormal([B, H, Lq, dk], 0, 1, 'float32', 1) as tf.Tensor4D;
        const k = tf.randomNormal([B, H, Lk, dk], 0, 1, 'float32', 2) as tf.Tensor4D;
        const v = tf.randomNormal([B, H, Lk, dk], 0, 1, 'float32', 3) as tf.Tensor4D;
        const bias = tf.randomNormal([1, H, Lq, Lk], 0, 1, 'float32', 4);
        const w = tf.randomNormal([B, H, Lq, dk], 0, 1, 'float32', 5);
        const rate = 0.3;
        const keep = tf.tensor(
          keepFlags({ rate, exampleKeys: [1, 2] }, 'p', [H, Lq], Lk),
          [B, H, Lq, Lk],
          'bool',
        );
        const dense = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
          tf.matMul(
            tf.mul(
              tf.softmax(tf.add(tf.matMul(a, b, false, true), bias)),
              tf.div(tf.cast(keep, 'float32'), 1 - rate),
            ),
            c,
          );
        const f =
          (impl: (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.Tensor) =>
          (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
            tf.sum(tf.mul(impl(a, b, c), w));
        const split = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
          splitHeadAttention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, bias, { keep, rate });
        const batched = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
          batchedAttention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, bias, { keep, rate });
        const close = (a: tf.Tensor, b: tf.Tensor) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!;
        const ref = tf.grads(f(dense))([q, k, v]);
        for (const [name, impl] of [
          ['split', split],
          ['batched', batched],
        ] as const) {
          assert.ok(close(impl(q, k, v), dense(q, k, v)) < 1e-5, `${name} values`);
          const got = tf.grads(f(impl))([q, k, v]);
          for (let i = 0; i < 3; i++)
            assert.ok(close(ref[i]!, got[i]!) < 1e-4, `${name}: gradient ${'qkv'[i]}`);
        }
        // The mask matters: without it the output differs.
        assert.ok(close(split(q, k, v), splitHeadAttention(q, k, v, bias)) > 1e-2);
      });
    });

    for (const opts of [V1, V11]) {
      test(`${opts.variant}: with dropout, the loss gradient w.r.t. input embeddings matches finite differences`, () => {
        const { config, tensors } = makeTinyT5(opts);
        const model = T5Model.fromWeights(config, tensors);
        tf.tidy(() => {
          const b = batch(model);
          const dropout: DropoutPlan = { rate: 0.3, exampleKeys: [101, 202] };
          const f = (e: tf.Tensor3D) => model.loss({ ...b, inputsEmbeds: e, dropout });
          assert.ok(
            Math.abs(f(b.inputsEmbeds).dataSync()[0]! - model.loss(b).dataSync()[0]!) > 1e-3,
            'dropout changes the loss',
          );
          for (const seed of [11, 12, 13]) {
            const g = tf.grad((t: tf.Tensor) => f(t as tf.Tensor3D))(b.inputsEmbeds);
            const u = tf.randomNormal(b.inputsEmbeds.shape, 0, 1, 'float32', seed);
            const eps = opts.variant === 'v1' ? 2e-3 : 1e-2;
            const analytic = tf.sum(tf.mul(g, u)).dataSync()[0]!;
            const plus = f(tf.add(b.inputsEmbeds, tf.mul(u, eps)) as tf.Tensor3D).dataSync()[0]!;
            const minus = f(tf.sub(b.inputsEmbeds, tf.mul(u, eps)) as tf.Tensor3D).dataSync()[0]!;
            const numeric = (plus - minus) / (2 * eps);
            const tol = 2e-2 * Math.max(1, Math.abs(analytic));
            assert.ok(Math.abs(analytic - numeric) < tol, `analytic ${analytic} vs numeric ${numeric}`);
          }
        });
        model.dispose();
      });
    }

    test('rate 0 is exactly the evaluation-mode pass', () => {
      const { config, tensors } = makeTinyT5(V11);
      const model = T5Model.fromWeights(config, tensors);
      tf.tidy(() => {
        const b = batch(model);
        const plain = model.lossTerms(b).perExample.dataSync();
        const zero = model
          .lossTerms({ ...b, dropout: { rate: 0, exampleKeys: [1, 2] } })
          .perExample.dataSync();
        assert.deepEqual(Array.from(zero), Array.from(plain));
      });
      model.dispose();
    });

    test("an example's loss and gradient are the same alone and beside a longer example", () => {
      const { config, tensors } = makeTinyT5(V11);
      const model = T5Model.fromWeights(config, tensors);
      tf.tidy(() => {
        const b = batch(model);
        // Example 1 alone, cut to its own length (4 source, 2 target positions).
        const alone: Seq2SeqBatch = {
          inputsEmbeds: tf.slice(b.inputsEmbeds, [1, 0, 0], [1, 3, -1]) as tf.Tensor3D,
          attentionMask: tf.slice(b.attentionMask, [1, 0], [1, 3]) as tf.Tensor2D,
          labels: tf.slice(b.labels, [1, 0], [1, 2]) as tf.Tensor2D,
          labelMask: tf.slice(b.labelMask, [1, 0], [1, 2]) as tf.Tensor2D,
        };
        const lossAndGrad = (x: Seq2SeqBatch, keys: number[]) => {
          const dropout: DropoutPlan = { rate: 0.3, exampleKeys: keys };
          const row = keys.length - 1;
          const f = (e: tf.Tensor) =>
            tf
              .slice(
                model.lossTerms({ ...x, inputsEmbeds: e as tf.Tensor3D, dropout }).perExample,
                [row],
                [1],
              )
              .sum();
          const { value, grad } = tf.valueAndGrad(f)(x.inputsEmbeds);
          return { loss: value.dataSync()[0]!, grad: tf.slice(grad, [row, 0, 0], [1, 3, -1]) };
        };
        const inBatch = lossAndGrad(b, [5, 77]);
        const single = lossAndGrad(alone, [77]);
        const other = lossAndGrad(alone, [78]);
        const rel = (a: number, c: number) => Math.abs(a - c) / Math.abs(c);
        assert.ok(rel(inBatch.loss, single.loss) < 1e-5, `${inBatch.loss} vs ${single.loss}`);
        const gDiff = tf.max(tf.abs(tf.sub(inBatch.grad, single.grad))).dataSync()[0]!;
        const gScale = tf.max(tf.abs(single.grad)).dataSync()[0]!;
        assert.ok(gDiff < 1e-4 * gScale, `gradient differs by ${gDiff} (scale ${gScale})`);
        assert.ok(rel(other.loss, single.loss) > 1e-3, 'another key draws other masks');
      });
      model.dispose();
    });

    test('forward/backward with dropout leaks no tensors', () => {
      const { config, tensors } = makeTinyT5(V1);
      const model = T5Model.fromWeights(config, tensors);
      const b = batch(model);
      const dropout: DropoutPlan = { rate: 0.1, exampleKeys: [3, 4] };
      const step = () =>
        tf.tidy(() => {
          tf.grad((e: tf.Tensor) => model.loss({ ...b, inputsEmbeds: e as tf.Tensor3D, dropout }))(
            b.inputsEmbeds,
          ).dataSync();
        });
      step();
      const start = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) step();
      assert.equal(tf.memory().numTensors, start);
      tf.dispose(Object.values(b));
      model.dispose();
    });
  });
}

function batch(model: T5Model): Seq2SeqBatch {
  return tf.tidy(() => {
    const ids = tf.tensor2d(
      [
        [5, 6, 7, 8, 1, 0],
        [9, 10, 1, 0, 0, 0],
      ],
      [2, 6],
      'int32',
    );
    return {
      inputsEmbeds: model.embed(ids),
      attentionMask: tf.tensor2d([
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 0, 0, 0],
      ]) as tf.Tensor2D,
      labels: tf.tensor2d(
        [
          [3, 4, 1],
          [11, 1, 0],
        ],
        [2, 3],
        'int32',
      ),
      labelMask: tf.tensor2d([
        [1, 1, 1],
        [1, 1, 0],
      ]) as tf.Tensor2D,
    };
  });
}
