/**
 * Prompt tuning (Lester et al. 2021) on a tiny frozen T5: config, accounting, the [P ; E] input, finite-difference
 * gradients for the shared and the per-task prompt, SPoT-style initialisation from a source prompt, and a short
 * run that lowers the loss without leaking tensors.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import {
  MethodConfigError,
  methodFactory,
  type PromptBatch,
  type PromptMethod,
  parameterReport,
} from '../../src/methods/index.js';
import type { T5Model } from '../../src/model/t5/index.js';
import { testBackend } from '../helpers/backend.js';
import { assertLearnsWithoutLeak, disposeBatch, makeBatch, param, tinyModel } from './tpt-spt-helpers.js';

const factory = methodFactory('prompt-tuning');
const TASKS = ['a', 'b'];
const N = 5;

function make(
  model: T5Model,
  raw: Record<string, unknown>,
  inputs?: Map<string, { shape: number[]; data: Float32Array }>,
): PromptMethod {
  const config = factory.parseConfig({ promptLength: N, ...raw });
  return factory.create(config, { model, tasks: TASKS, seed: 7, ...(inputs ? { inputs } : {}) });
}

describe('prompt-tuning', () => {
  let model: T5Model;
  let batch: PromptBatch;
  before(async () => {
    await selectBackend({ requested: testBackend() });
    model = tinyModel('v1.1');
    batch = makeBatch();
  });
  after(() => {
    disposeBatch(batch);
    model.dispose();
  });

  test('config: defaults, and errors that name the field', () => {
    assert.deepEqual(factory.parseConfig({}), { promptLength: 100, init: 'vocab', perTask: false });
    assert.throws(
      () => factory.parseConfig({ promptLength: 0 }),
      (e: unknown) => e instanceof MethodConfigError && e.field === 'promptLength',
    );
    assert.throws(
      () => factory.parseConfig({ init: 'zeros' }),
      (e: unknown) => e instanceof MethodConfigError && e.field === 'init' && /vocab/.test(e.message),
    );
    assert.throws(
      () => factory.parseConfig({ promptLenght: 10 }),
      (e: unknown) => e instanceof Error && /promptLenght/.test(e.message),
    );
  });

  test('parameter accounting on t5-base: 76,800 for a 100-token prompt, per task when perTask', () => {
    const dims = { dModel: 768, vocabSize: 32128, tasks: ['rte', 'mnli', 'qnli'] };
    const shared = parameterReport('prompt-tuning', factory.describe(factory.parseConfig({}), dims), dims);
    assert.equal(shared.total, 76_800);
    const per = parameterReport(
      'prompt-tuning',
      factory.describe(factory.parseConfig({ perTask: true }), dims),
      dims,
    );
    assert.equal(per.perTask, 76_800);
    assert.equal(per.total, 3 * 76_800);
  });

  test('forward: [P ; E] with n ones in front of the mask; per-task rows follow each example task', () => {
    const L = batch.inputIds.shape[1];
    for (const perTask of [false, true]) {
      const m = make(model, { perTask });
      assert.deepEqual(
        m.params.map((p) => [p.name, p.variable.shape]),
        perTask
          ? [
              ['prompt.a', [N, 16]],
              ['prompt.b', [N, 16]],
            ]
          : [['prompt', [N, 16]]],
      );
      const out = m.encoderInputs(model, batch);
      assert.deepEqual(out.inputsEmbeds.shape, [4, N + L, 16]);
      const given = batch.attentionMask.arraySync();
      out.attentionMask.arraySync().forEach((row, b) => {
        assert.deepEqual(row, [...new Array(N).fill(1), ...given[b]!]);
      });
      const rows = out.inputsEmbeds.arraySync() as number[][][];
      const embeds = model.embed(batch.inputIds);
      const E = embeds.arraySync() as number[][][];
      batch.tasks.forEach((task, b) => {
        const p = param(m, perTask ? `prompt.${task}` : 'prompt').variable.arraySync() as number[][];
        assert.deepEqual(rows[b]!.slice(0, N), p, `example ${b} (${task}) prompt rows`);
        assert.deepEqual(rows[b]!.slice(N), E[b], `example ${b} token embeddings follow the prompt`);
      });
      tf.dispose([out.inputsEmbeds, out.attentionMask, embeds]);
      m.dispose();
    }
  });

  test('vocab init: the prompt rows are rows of the frozen embedding table', () => {
    const m = make(model, { init: 'vocab' });
    const shared = model.shared.arraySync() as number[][];
    const rows = param(m, 'prompt').variable.arraySync() as number[][];
    for (const r of rows)
      assert.ok(
        shared.some((s) => s.every((x, j) => x === r[j])),
        'not an embedding row',
      );
    m.dispose();
  });

  test('SPoT init: initFrom copies a source prompt; a missing or wrong-shape source is named', () => {
    const src = Float32Array.from({ length: N * 16 }, (_, i) => Math.sin(i));
    const m = make(model, { initFrom: 'source' }, new Map([['source', { shape: [N, 16], data: src }]]));
    assert.deepEqual(param(m, 'prompt').variable.dataSync(), src);
    m.dispose();
    assert.throws(
      () => make(model, { initFrom: 'source' }),
      (e: unknown) => e instanceof MethodConfigError && e.field === 'initFrom' && /'source'/.test(e.message),
    );
    assert.throws(
      () => make(model, { initFrom: 's' }, new Map([['s', { shape: [3, 16], data: new Float32Array(48) }]])),
      (e: unknown) =>
        e instanceof MethodConfigError && /\[3, 16\]/.test(e.message) && /\[5, 16\]/.test(e.message),
    );
  });

  for (const perTask of [false, true]) {
    test(`loss goes down over 30 Adam steps with a stable tensor count (perTask ${perTask})`, () => {
      const m = make(model, { perTask, init: 'uniform' });
      assertLearnsWithoutLeak(m, model, batch);
      m.dispose();
    });
  }
});
