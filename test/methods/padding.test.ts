/**
 * Padding must not change an example's results (issue 12 item 2). A micro-batch is padded to its longest example,
 * so whatever a method computes for an example must not depend on which examples share its micro-batch, how many
 * there are, or where it sits: that is what makes N workers equal one process. Checked for every value of the
 * options that decide what the padding feeds: ATTEMPT's `poolPadding` and TPT's `maskPadding` (with both poolings).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { mulberry32 } from '../../src/data/rng.js';
import type { Attempt } from '../../src/methods/attempt/index.js';
import { methodFactory, type PromptBatch, type PromptMethod } from '../../src/methods/index.js';
import type { Tpt } from '../../src/methods/tpt/index.js';
import type { T5Model } from '../../src/model/t5/index.js';
import { testBackend } from '../helpers/backend.js';
import { disposeBatch, makeBatch, tinyModel } from './tpt-spt-helpers.js';

type Row = [number[], number[], string];

/** The example under test: short, so every batch below pads it. */
const X: Row = [[20, 21, 22, 1], [11, 1], 'a'];
/** Longer neighbours (input and target), so they set the padded lengths. */
const Y: Row = [[5, 6, 7, 8, 9, 10, 11, 12, 13, 1], [3, 4, 5, 1], 'b'];
const Z: Row = [[40, 41, 42, 43, 44, 45, 1], [12, 13, 1], 'a'];
/** The job's maxSourceLength: the fixed length the released codes pad to; longer than every row. */
const FIXED = 12;

/** X alone; beside a longer example; third in a micro-batch of three. Returns X's row in each. */
const PLACEMENTS: { name: string; rows: Row[]; at: number }[] = [
  { name: 'alone', rows: [X], at: 0 },
  { name: 'beside a longer example', rows: [X, Y], at: 0 },
  { name: 'in a micro-batch of three', rows: [Z, Y, X], at: 2 },
];

/**
 * What the loss and the attention weights must agree to. Whatever the method feeds the encoder (prompt rows,
 * pooled input, retrieved rows) is checked bit for bit. The loss goes through the encoder and decoder, whose
 * matmuls and softmax sums run over the batch's padded lengths: masked positions contribute exact zeros, but a
 * kernel may add them in another order and blocks the rows of another batch size differently, so the loss agrees
 * to float32 rounding, not bit for bit (measured: identical on wasm, up to 2 ulp on the native backend). Relative
 * 5e-7 is 4 ulp (float32 epsilon 1.19e-7); the padding effect this guards against was 2e-5 relative (the issue's
 * 10.240682 vs 10.240471).
 */
const REL = 5e-7;
/** The attention weights (in [0, 1]): measured up to 7e-9 apart on native, 0 on wasm. */
const TOL = 1e-7;

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= REL * Math.max(Math.abs(a), Math.abs(b));
}

const SOURCES = ['mnli', 'sst2'];

function sourceInputs(d: number): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  SOURCES.forEach((name, i) => {
    const rng = mulberry32(1000 + i);
    out.set(name, { shape: [3, d], data: Float32Array.from({ length: 3 * d }, () => (rng() * 2 - 1) * 1.7) });
  });
  return out;
}

/** X's own token loss (mean over its label tokens) in `batch`. */
function exampleLoss(method: PromptMethod, model: T5Model, batch: PromptBatch, at: number): number {
  return tf.tidy(() => {
    const enc = method.encoderInputs(model, batch);
    const { perExample } = model.lossTerms({ ...enc, labels: batch.labels, labelMask: batch.labelMask });
    const count = tf.sum(batch.labelMask, 1).arraySync() as number[];
    return (perExample.arraySync() as number[])[at]! / count[at]!;
  });
}

/** The prompt rows prepended to X's input (before its tokens), flat. */
function examplePrompt(
  method: PromptMethod,
  model: T5Model,
  batch: PromptBatch,
  at: number,
  P: number,
): number[] {
  return tf.tidy(() => {
    const enc = method.encoderInputs(model, batch);
    const d = enc.inputsEmbeds.shape[2];
    return [...tf.slice(enc.inputsEmbeds, [at, 0, 0], [1, P, d]).dataSync()];
  });
}

function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  assert.equal(a.length, b.length);
  return Math.max(0, ...a.map((x, i) => Math.abs(x - b[i]!)));
}

describe('padding does not change an example', () => {
  let model: T5Model;
  before(async () => {
    await selectBackend({ requested: testBackend() });
    model = tinyModel();
  });
  after(() => model.dispose());

  for (const poolPadding of [false, true]) {
    test(`attempt, poolPadding ${poolPadding}: pooled input bit for bit, weights and loss to rounding`, () => {
      const f = methodFactory('attempt');
      const config = f.parseConfig({
        promptLength: 3,
        attentionDim: 4,
        sources: SOURCES,
        multiTask: true,
        temperature: 0.5,
        poolPadding,
      });
      const m = f.create(config, {
        model,
        tasks: ['a', 'b'],
        seed: 3,
        inputs: sourceInputs(model.config.dModel),
        maxSourceLength: FIXED,
      }) as Attempt;
      // Training moves W_down / W_up far from their N(0, 0.01) start; larger values make the weights react to x_hat.
      const rng = mulberry32(50);
      for (const p of m.params) {
        p.variable.assign(
          tf.tensor(
            Float32Array.from({ length: p.variable.size }, () => rng() * 2 - 1),
            p.variable.shape,
          ),
        );
      }
      const seen = PLACEMENTS.map(({ rows, at }) => {
        const batch = makeBatch(rows);
        try {
          const pooled = tf.tidy(() => [...m.pooledInput(model, batch).slice([at, 0], [1, -1]).dataSync()]);
          return {
            pooled,
            weights: m.attentionWeights(model, batch)[at]!,
            loss: exampleLoss(m, model, batch, at),
          };
        } finally {
          disposeBatch(batch);
        }
      });
      const [alone, ...others] = seen;
      // With poolPadding the pad embedding must take part (X is shorter than FIXED): otherwise the two option values
      // would be indistinguishable here and the test would prove nothing about the released behaviour.
      const realOnly = tf.tidy(() => {
        const ids = tf.tensor2d([X[0]], [1, X[0].length], 'int32');
        return [...tf.max(model.embed(ids), 1).dataSync()];
      });
      if (poolPadding)
        assert.ok(maxAbsDiff(alone!.pooled, realOnly) > 1e-3, 'the pad embedding never won a coordinate');
      else assert.equal(maxAbsDiff(alone!.pooled, realOnly), 0);
      others.forEach((o, i) => {
        const where = PLACEMENTS[i + 1]!.name;
        assert.deepEqual(o.pooled, alone!.pooled, `x_hat ${where}`);
        assert.ok(
          maxAbsDiff(o.weights, alone!.weights) <= TOL,
          `weights ${where}: ${o.weights} vs ${alone!.weights}`,
        );
        assert.ok(close(o.loss, alone!.loss), `loss ${where}: ${o.loss} vs ${alone!.loss}`);
      });
      m.dispose();
    });
  }

  for (const maskPadding of [true, false]) {
    for (const selector of ['maxPooling', 'avgPooling'] as const) {
      test(`tpt, maskPadding ${maskPadding}, ${selector}: retrieval and prompt rows bit for bit, loss to rounding`, () => {
        const f = methodFactory('tpt');
        const raw = {
          bankSize: 24,
          topK: 4,
          taskPromptLength: 3,
          stage: 'target',
          bankInit: 'vocab',
          selector,
          maskPadding,
        };
        const config = f.parseConfig(raw);
        const m = f.create(config, { model, tasks: ['a', 'b'], seed: 5, maxSourceLength: FIXED }) as Tpt;
        const seen = PLACEMENTS.map(({ rows, at }) => {
          const batch = makeBatch(rows);
          try {
            const { indices, k } = m.retrieve(model, batch);
            return {
              retrieved: [...indices.subarray(at * k, (at + 1) * k)],
              prompt: examplePrompt(m, model, batch, at, k + 3),
              loss: exampleLoss(m, model, batch, at),
            };
          } finally {
            disposeBatch(batch);
          }
        });
        const [alone, ...others] = seen;
        if (!maskPadding) {
          // The released behaviour must be what runs: X alone has no pad in its batch, yet its encoder sees FIXED
          // positions, so its loss differs from the masked method's.
          const masked = f.create(f.parseConfig({ ...raw, maskPadding: true }), {
            model,
            tasks: ['a', 'b'],
            seed: 5,
          });
          const batch = makeBatch([X]);
          const maskedLoss = exampleLoss(masked, model, batch, 0);
          disposeBatch(batch);
          masked.dispose();
          assert.ok(Math.abs(maskedLoss - alone!.loss) > 1e-3, `the pads changed nothing (${maskedLoss})`);
        }
        others.forEach((o, i) => {
          const where = PLACEMENTS[i + 1]!.name;
          assert.deepEqual(o.retrieved, alone!.retrieved, `retrieved rows ${where}`);
          assert.deepEqual(o.prompt, alone!.prompt, `prompt rows ${where}`);
          assert.ok(close(o.loss, alone!.loss), `loss ${where}: ${o.loss} vs ${alone!.loss}`);
        });
        m.dispose();
      });
    }
  }

  test('tpt maskPadding false: the encoder sees X padded to maxSourceLength, unmasked, whatever the batch', () => {
    const f = methodFactory('tpt');
    const m = f.create(
      f.parseConfig({ bankSize: 24, topK: 4, taskPromptLength: 3, bankInit: 'vocab', maskPadding: false }),
      { model, tasks: ['a', 'b'], seed: 5, maxSourceLength: FIXED },
    );
    for (const { rows } of PLACEMENTS) {
      const batch = makeBatch(rows);
      const enc = m.encoderInputs(model, batch);
      assert.deepEqual(enc.inputsEmbeds.shape, [rows.length, 4 + 3 + FIXED, model.config.dModel]);
      assert.equal(tf.min(enc.attentionMask).arraySync(), 1, 'no position is masked');
      // Past X's tokens every position holds the pad embedding.
      const tail = tf.tidy(() =>
        tf
          .slice(enc.inputsEmbeds, [rows.indexOf(X), 7 + X[0].length, 0], [1, FIXED - X[0].length, -1])
          .arraySync(),
      )[0]!;
      const pad = tf.tidy(() => model.embed(tf.tensor2d([[0]], [1, 1], 'int32')).arraySync())[0]![0]!;
      for (const row of tail) assert.deepEqual(row, pad);
      tf.dispose([enc.inputsEmbeds, enc.attentionMask]);
      disposeBatch(batch);
    }
    // A batch longer than the fixed length cannot be padded to it: an error, not a silently different result.
    const long: Row = [Array.from({ length: FIXED + 1 }, (_, i) => 5 + i), [3, 1], 'a'];
    const batch = makeBatch([long]);
    assert.throws(() => m.encoderInputs(model, batch), /maxSourceLength 12, but this batch has 13 positions/);
    disposeBatch(batch);
    m.dispose();
  });

  test('the released-padding options need the fixed length: an error naming the option', () => {
    const a = methodFactory('attempt');
    assert.throws(
      () =>
        a.create(a.parseConfig({ promptLength: 3, attentionDim: 4, sources: SOURCES, poolPadding: true }), {
          model,
          tasks: ['a'],
          seed: 3,
          inputs: sourceInputs(model.config.dModel),
        }),
      /attempt\.poolPadding: .*maxSourceLength/,
    );
    const t = methodFactory('tpt');
    assert.throws(
      () =>
        t.create(t.parseConfig({ bankSize: 24, topK: 4, bankInit: 'vocab', maskPadding: false }), {
          model,
          tasks: ['a'],
          seed: 5,
        }),
      /tpt\.maskPadding: .*maxSourceLength/,
    );
  });
});
