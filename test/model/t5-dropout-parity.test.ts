/**
 * Dropout where Hugging Face applies it: transformers' T5 in training mode, with every dropout of the model fed
 * promptmesh's masks for the same sites (test/helpers/hf_t5_dropout_reference.py), gives the same loss and the same
 * gradient w.r.t. the input embeddings as promptmesh. The reference refuses a site it drops at that promptmesh has no
 * mask for and a mask it never used, so a missing, extra or misplaced site fails here. Skips with a message when
 * python3 lacks torch or transformers.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import type { T5Config } from '../../src/model/checkpoint/index.js';
import { loadT5Model } from '../../src/model/load-t5.js';
import { type DropoutPlan, keepFlags } from '../../src/model/t5/index.js';
import { testBackend } from '../helpers/backend.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const REFERENCE = path.resolve('test/helpers/hf_t5_dropout_reference.py');

function pythonPeers(): string | undefined {
  const r = spawnSync('python3', ['-c', 'import torch, transformers'], { encoding: 'utf8' });
  return r.status === 0
    ? undefined
    : `python3 cannot import torch and transformers (bash scripts/setup.sh --python-peers installs them): ${r.stderr.trim().split('\n').at(-1)}`;
}

/** Every site promptmesh drops at for a batch of source length L and target length T, with its mask. */
function siteMasks(plan: DropoutPlan, c: T5Config, L: number, T: number): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  const add = (site: string, rows: number[], cols: number) => {
    out[site] = Array.from(keepFlags(plan, site, rows, cols));
  };
  const H = c.numHeads;
  for (const [stack, layers, len] of [
    ['encoder', c.numLayers, L],
    ['decoder', c.numDecoderLayers, T],
  ] as const) {
    add(`${stack}.embed`, [len], c.dModel);
    for (let i = 0; i < layers; i++) {
      add(`${stack}.${i}.self.probs`, [H, len], len);
      add(`${stack}.${i}.self.out`, [len], c.dModel);
      if (stack === 'decoder') {
        add(`${stack}.${i}.cross.probs`, [H, len], L);
        add(`${stack}.${i}.cross.out`, [len], c.dModel);
      }
      add(`${stack}.${i}.ff.hidden`, [len], c.dFf);
      add(`${stack}.${i}.ff.out`, [len], c.dModel);
    }
    add(`${stack}.final`, [len], c.dModel);
  }
  return out;
}

const INPUT_IDS = [
  [5, 6, 7, 8, 1, 0],
  [9, 10, 1, 0, 0, 0],
];
const ATTENTION = [
  [1, 1, 1, 1, 1, 0],
  [1, 1, 1, 0, 0, 0],
];
const LABELS = [
  [3, 4, 1],
  [11, 1, 0],
];
const LABEL_MASK = [
  [1, 1, 1],
  [1, 1, 0],
];

describe('dropout sites and masks equal transformers T5 in training mode', { skip: pythonPeers() }, () => {
  before(async () => {
    await selectBackend({ requested: testBackend() });
  });

  for (const variant of ['v1', 'v1.1'] as const) {
    test(`${variant}: loss and input-embedding gradient`, (t) => {
      const dir = writeTinyCheckpoint({ variant, seed: 11, vocabSize: 64, numHeads: 2, dropoutRate: 0.25 });
      try {
        const { model } = loadT5Model(dir);
        const plan: DropoutPlan = { rate: 0.25, exampleKeys: [1234, 987654] };
        const [L, T] = [INPUT_IDS[0]!.length, LABELS[0]!.length];
        const { loss, grad } = tf.tidy(() => {
          const inputsEmbeds = model.embed(tf.tensor2d(INPUT_IDS, undefined, 'int32'));
          const batch = {
            attentionMask: tf.tensor2d(ATTENTION) as tf.Tensor2D,
            labels: tf.tensor2d(LABELS, undefined, 'int32') as tf.Tensor2D,
            labelMask: tf.tensor2d(LABEL_MASK) as tf.Tensor2D,
            dropout: plan,
          };
          const { value, grad } = tf.valueAndGrad((e: tf.Tensor) =>
            model.loss({ ...batch, inputsEmbeds: e as tf.Tensor3D }),
          )(inputsEmbeds);
          return { loss: value.dataSync()[0]!, grad: grad.arraySync() as number[][][] };
        });
        const noDropout = tf.tidy(
          () =>
            model
              .loss({
                inputsEmbeds: model.embed(tf.tensor2d(INPUT_IDS, undefined, 'int32')),
                attentionMask: tf.tensor2d(ATTENTION) as tf.Tensor2D,
                labels: tf.tensor2d(LABELS, undefined, 'int32') as tf.Tensor2D,
                labelMask: tf.tensor2d(LABEL_MASK) as tf.Tensor2D,
              })
              .dataSync()[0]!,
        );
        model.dispose();
        const request = {
          rate: plan.rate,
          inputIds: INPUT_IDS,
          attentionMask: ATTENTION,
          labels: LABELS.map((row, b) => row.map((x, j) => (LABEL_MASK[b]![j] ? x : -100))),
          masks: siteMasks(plan, model.config, L, T),
        };
        const r = spawnSync('python3', [REFERENCE, dir], {
          input: JSON.stringify(request),
          encoding: 'utf8',
        });
        assert.equal(r.status, 0, r.stderr);
        const ref = JSON.parse(r.stdout) as { loss: number; grad: number[][][] };
        const gScale = Math.max(...ref.grad.flat(2).map(Math.abs));
        let gDiff = 0;
        ref.grad.flat(2).forEach((x, i) => {
          gDiff = Math.max(gDiff, Math.abs(x - grad.flat(2)[i]!));
        });
        t.diagnostic(
          `loss ${loss} vs transformers ${ref.loss} (without dropout ${noDropout}); ` +
            `gradient max |diff| ${gDiff.toExponential(2)} of max |g| ${gScale.toExponential(2)}`,
        );
        assert.ok(Math.abs(loss - noDropout) > 1e-2, 'the masks change the loss');
        assert.ok(Math.abs(loss - ref.loss) < 1e-5 * Math.abs(ref.loss), `loss ${loss} vs ${ref.loss}`);
        assert.ok(gDiff < 1e-4 * gScale, `gradient differs by ${gDiff} (max |g| ${gScale})`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
