import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { demoTaskNames } from '../../src/data/demo/index.js';
import {
  loadT5Checkpoint,
  makeTinyT5,
  type TinyT5Options,
  writeT5Checkpoint,
} from '../../src/model/checkpoint/index.js';
import { T5Model } from '../../src/model/t5/index.js';
import { loadTokenizer } from '../../src/model/tokenizer/index.js';
import { demoPretrainText, demoSourceProbe, pretrainBackbone } from '../../src/train/pretrain/index.js';
import { testBackend } from '../helpers/backend.js';
import { ensureSpmModel, SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

function batch() {
  return {
    ids: tf.tensor2d(
      [
        [5, 6, 7, 8, 1, 0],
        [9, 10, 1, 0, 0, 0],
      ],
      [2, 6],
      'int32',
    ),
    mask: tf.tensor2d([
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
}

function lossOf(model: T5Model, b: ReturnType<typeof batch>): tf.Scalar {
  return model.loss({
    inputsEmbeds: model.embed(b.ids),
    attentionMask: b.mask,
    labels: b.labels,
    labelMask: b.labelMask,
  });
}

describe('trainable T5 mode (wasm)', () => {
  before(async () => {
    await selectBackend({ requested: testBackend() });
  });

  for (const variant of ['v1', 'v1.1'] as const) {
    test(`${variant}: same loss as the frozen model; gradients reach every weight and match finite differences`, () => {
      const opts: TinyT5Options = {
        variant,
        seed: 3,
        vocabSize: 32,
        dModel: 8,
        dKv: 4,
        numHeads: 2,
        dFf: 12,
      };
      const { config, tensors } = makeTinyT5(opts);
      const frozen = T5Model.fromWeights(config, tensors);
      const model = T5Model.fromWeights(config, tensors, { trainable: true });
      const b = batch();
      try {
        const lf = tf.tidy(() => lossOf(frozen, b).dataSync()[0]!);
        const lt = tf.tidy(() => lossOf(model, b).dataSync()[0]!);
        assert.ok(Math.abs(lf - lt) < 1e-5, `frozen ${lf} vs trainable ${lt}`);
        assert.equal(frozen.trainableVariables().size, 0);

        const vars = model.trainableVariables();
        assert.deepEqual([...vars.keys()].sort(), [...tensors.keys()].sort());
        const { value, grads } = tf.variableGrads(() => lossOf(model, b), [...vars.values()]);
        value.dispose();
        const checked = [
          'shared.weight',
          'encoder.block.0.layer.0.SelfAttention.q.weight',
          'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight',
          'decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight',
          'decoder.block.1.layer.1.EncDecAttention.k.weight',
          'encoder.block.1.layer.0.layer_norm.weight',
          variant === 'v1' ? 'decoder.block.0.layer.2.DenseReluDense.wi.weight' : 'lm_head.weight',
          'decoder.final_layer_norm.weight',
        ];
        for (const [name, v] of vars) {
          const g = grads[v.name]!.dataSync() as Float32Array;
          assert.ok(
            g.some((x) => x !== 0),
            `no gradient reached ${name}`,
          );
          if (!checked.includes(name)) continue;
          // Largest entries: their finite differences are well above float32 noise.
          const order = [...g.keys()].sort((i, j) => Math.abs(g[j]!) - Math.abs(g[i]!)).slice(0, 3);
          const base = Float32Array.from(v.dataSync() as Float32Array);
          for (const i of order) {
            const at = (delta: number) => {
              const p = Float32Array.from(base);
              p[i] = p[i]! + delta;
              v.assign(tf.tensor(p, v.shape));
              return tf.tidy(() => lossOf(model, b).dataSync()[0]!);
            };
            const h = 1e-2;
            const fd = (at(h) - at(-h)) / (2 * h);
            v.assign(tf.tensor(base, v.shape));
            const tol = 0.03 * Math.abs(fd) + 2e-3;
            assert.ok(
              Math.abs(fd - g[i]!) < tol,
              `${name}[${i}]: analytic ${g[i]} vs finite difference ${fd}`,
            );
          }
        }
        tf.dispose(Object.values(grads));
      } finally {
        tf.dispose(Object.values(b));
        frozen.dispose();
        model.dispose();
      }
    });
  }

  test('a tiny pretraining run lowers the loss, leaks no tensors, and writes a folder that loads back', async (t) => {
    const spmDir = await ensureSpmModel();
    if (!spmDir) {
      t.skip(SPM_MISSING_MESSAGE);
      return;
    }
    const tokenizer = await loadTokenizer(path.join(spmDir, 'spiece.model'));
    const texts = demoPretrainText(200, 5);
    const supervised = [{ source: 'sentiment review: the film was great .', target: 'positive' }];
    const before = tf.memory().numTensors;
    const probed: number[] = [];
    const options = {
      shape: {
        variant: 'v1.1',
        dModel: 16,
        dKv: 8,
        numHeads: 2,
        dFf: 32,
        numLayers: 1,
        numDecoderLayers: 1,
        relativeAttentionNumBuckets: 8,
        relativeAttentionMaxDistance: 16,
      },
      steps: 30,
      batchSize: 8,
      lr: 1e-2,
      warmupSteps: 2,
      weightDecay: 0,
      clipNorm: 1,
      seed: 1,
      chunkTokens: 24,
      maxSourceTokens: 32,
      supervisedFraction: 0.2,
      prefixLmFraction: 0.3,
    } as const;
    const result = pretrainBackbone(tokenizer, texts, supervised, {
      ...options,
      probe: demoSourceProbe(tokenizer, { seed: 1, examples: 3, maxSourceTokens: 32 }),
      probeEvery: 10,
      onProbe: (r) => probed.push(r.step),
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
    try {
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const first = mean(result.losses.slice(0, 5));
      const last = mean(result.losses.slice(-5));
      assert.ok(last < first - 0.5, `loss did not drop: ${first} -> ${last}`);
      // Probes every 10 updates and after the last, each scoring every demo source task.
      assert.deepEqual(probed, [10, 20, 30]);
      assert.deepEqual(
        result.probes.map((p) => p.step),
        [10, 20, 30],
      );
      for (const p of result.probes) {
        assert.deepEqual(Object.keys(p.scores).sort(), [...demoTaskNames('source')].sort());
        for (const [task, acc] of Object.entries(p.scores))
          assert.ok(acc >= 0 && acc <= 1, `${task}: ${acc}`);
      }

      writeT5Checkpoint(dir, result.config, result.model.exportWeights());
      const ckpt = loadT5Checkpoint(dir);

      // Continuing from the saved weights starts where the run ended, not from a fresh model's loss.
      const more = pretrainBackbone(tokenizer, texts, supervised, {
        ...options,
        steps: 3,
        init: { config: ckpt.config, tensors: loadT5Checkpoint(dir).tensors },
      });
      more.model.dispose();
      assert.ok(
        more.losses[0]! < first - 0.5,
        `continued run starts at ${more.losses[0]}, a fresh one at ${first}`,
      );

      assert.equal(ckpt.config.vocabSize, tokenizer.vocabSize);
      const loaded = T5Model.fromWeights(ckpt.config, ckpt.tensors);
      const b = batch();
      try {
        const a = tf.tidy(() => lossOf(result.model, b).dataSync()[0]!);
        const c = tf.tidy(() => lossOf(loaded, b).dataSync()[0]!);
        assert.ok(Math.abs(a - c) < 1e-5, `reloaded model differs: ${a} vs ${c}`);
      } finally {
        tf.dispose(Object.values(b));
        loaded.dispose();
      }
    } finally {
      result.model.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  });
});
