import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import type { TinyT5Options } from '../../src/model/checkpoint/index.js';
import { loadT5Model } from '../../src/model/load-t5.js';
import { T5Model } from '../../src/model/t5/index.js';
import { testBackend } from '../helpers/backend.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

// Wider than the other model tests' tiny config so that 24 decoding steps reach T5's logarithmic position buckets
// (8 buckets: exact up to distance 3, clamped from 16) and the heads differ.
const SHAPE = { vocabSize: 64, dModel: 32, dKv: 8, numHeads: 4, dFf: 64, numLayers: 2 } as const;
const VARIANTS: TinyT5Options[] = [
  { variant: 'v1', seed: 21, ...SHAPE },
  { variant: 'v1.1', seed: 22, ...SHAPE },
];
const STEPS = 24;

/** Three examples of lengths 7, 4 and 1, padded to 7, so cross-attention masks differ per row. */
function inputs(model: T5Model) {
  const rows = [
    [5, 6, 7, 8, 9, 10, 1],
    [11, 12, 13, 1, 0, 0, 0],
    [1, 0, 0, 0, 0, 0, 0],
  ];
  const ids = tf.tensor2d(rows, [3, 7], 'int32');
  const inputsEmbeds = model.embed(ids);
  ids.dispose();
  const attentionMask = tf.tensor2d(
    rows.map((r, i) => r.map((_, j) => (j < [7, 4, 1][i]! ? 1 : 0))),
  ) as tf.Tensor2D;
  return { inputsEmbeds, attentionMask };
}

/** The same model with another token as </s>, so examples stop at different steps. */
function withEos(model: T5Model, eos: number): T5Model {
  return T5Model.fromWeights({ ...model.config, eosTokenId: eos }, model.exportWeights());
}

// The wasm pass also covers the pure-JS cpu backend; the native pass (PROMPTMESH_TEST_BACKEND=node) the binding,
// whose attention takes the batched path where wasm splits heads (kernel-paths.ts).
const BACKENDS = testBackend() === 'wasm' ? (['wasm', 'cpu'] as const) : ([testBackend()] as const);
for (const backend of BACKENDS) {
  describe(`cached greedy decoding and label scoring on the ${backend} backend`, () => {
    before(async () => {
      await selectBackend({ requested: backend });
    });

    for (const opts of VARIANTS) {
      describe(`T5 ${opts.variant}`, () => {
        let dir: string;
        let model: T5Model;
        before(() => {
          dir = writeTinyCheckpoint(opts);
          model = loadT5Model(dir).model;
        });
        after(() => {
          model.dispose();
          fs.rmSync(dir, { recursive: true, force: true });
        });

        test('cached greedy decoding emits the same tokens as re-running the decoder', () => {
          const { inputsEmbeds, attentionMask } = inputs(model);
          const ref = model.greedyDecode(inputsEmbeds, attentionMask, STEPS, { kvCache: false });
          const got = model.greedyDecode(inputsEmbeds, attentionMask, STEPS);
          assert.deepEqual(got, ref);
          // A random model's </s> (id 1) may or may not come up; the test needs long sequences here.
          assert.ok(
            ref.some((s) => s.length > 12),
            `expected a long sequence, got ${JSON.stringify(ref)}`,
          );
          tf.dispose([inputsEmbeds, attentionMask]);
        });

        test('examples that reach </s> at different steps stop there, cached as uncached', () => {
          const { inputsEmbeds, attentionMask } = inputs(model);
          const free = model.greedyDecode(inputsEmbeds, attentionMask, STEPS, { kvCache: false });
          // Make the token the first example emits at its 4th step the end token: it stops there (or earlier),
          // and at least one other example must run on past it for the test to mean anything.
          const eos = free[0]![3]!;
          const eosModel = withEos(model, eos);
          try {
            const ref = eosModel.greedyDecode(inputsEmbeds, attentionMask, STEPS, { kvCache: false });
            const got = eosModel.greedyDecode(inputsEmbeds, attentionMask, STEPS);
            assert.deepEqual(got, ref);
            assert.ok(ref[0]!.length <= 3, `first example did not stop at token ${eos}: ${ref[0]}`);
            assert.ok(
              ref.some((s) => s.length > ref[0]!.length),
              `no example ran past the first one's </s>: ${JSON.stringify(ref)}`,
            );
            for (const s of got) assert.ok(!s.includes(eos), 'the end token is not part of a result');
          } finally {
            eosModel.dispose();
            tf.dispose([inputsEmbeds, attentionMask]);
          }
        });

        test('maxLength bounds the cached decode, and 0 decodes nothing', () => {
          const { inputsEmbeds, attentionMask } = inputs(model);
          const ref = model.greedyDecode(inputsEmbeds, attentionMask, 5, { kvCache: false });
          assert.deepEqual(model.greedyDecode(inputsEmbeds, attentionMask, 5), ref);
          for (const s of ref) assert.ok(s.length <= 5);
          assert.deepEqual(model.greedyDecode(inputsEmbeds, attentionMask, 0), [[], [], []]);
          tf.dispose([inputsEmbeds, attentionMask]);
        });

        test('label scores with shared encoder and cross-attention keys equal the per-candidate scores', () => {
          const { inputsEmbeds, attentionMask } = inputs(model);
          // Candidates of different lengths (padded in the batch), like label words of several pieces.
          const candidates = [[3, 1], [4, 5, 6, 1], [7, 1], [1], [8, 9, 1]];
          const ref = model.scoreCandidates(inputsEmbeds, attentionMask, candidates, { kvCache: false });
          const got = model.scoreCandidates(inputsEmbeds, attentionMask, candidates);
          assert.equal(got.length, 3);
          for (let b = 0; b < 3; b++) {
            assert.equal(got[b]!.length, candidates.length);
            for (let c = 0; c < candidates.length; c++) {
              const r = ref[b]![c]!;
              const g = got[b]![c]!;
              assert.ok(Number.isFinite(g) && g < 0, `score ${g}`);
              // Float32 rounding: the two paths sum the same products in a different order.
              assert.ok(Math.abs(g - r) <= 1e-5 * Math.max(1, Math.abs(r)), `[${b}][${c}]: ${g} vs ${r}`);
            }
          }
          tf.dispose([inputsEmbeds, attentionMask]);
        });

        test('cached decoding and scoring leave no tensors behind', () => {
          const { inputsEmbeds, attentionMask } = inputs(model);
          const run = () => {
            model.greedyDecode(inputsEmbeds, attentionMask, STEPS);
            model.scoreCandidates(inputsEmbeds, attentionMask, [
              [3, 1],
              [4, 5, 1],
            ]);
          };
          run(); // fills the model's position-bias cache
          const start = tf.memory().numTensors;
          for (let i = 0; i < 3; i++) run();
          assert.equal(tf.memory().numTensors, start);
          tf.dispose([inputsEmbeds, attentionMask]);
        });
      });
    }
  });
}
