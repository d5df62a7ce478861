/**
 * Evaluation modes (issue 12 item 5): 'generate' (the papers' predict_with_generate + string match, the default)
 * and 'rank' (label scoring), on a tiny T5 with a real SentencePiece tokenizer. Each mode's predictions are checked
 * against an independent computation, and the checkpoint is one where the two modes disagree.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { JobConfigError, parseJobConfig } from '../../src/config/job-config.js';
import { generateDemoSuite } from '../../src/data/demo/index.js';
import { getTask } from '../../src/data/tasks/registry.js';
import { methodFactory, type PromptMethod } from '../../src/methods/index.js';
import { makeTinyT5 } from '../../src/model/checkpoint/index.js';
import { T5Model } from '../../src/model/t5/index.js';
import { loadTokenizer, type Tokenizer } from '../../src/model/tokenizer/index.js';
import { disposeBatch, ExampleEncoder, makeBatch } from '../../src/train/batching.js';
import { type EvalTask, evaluateTask } from '../../src/train/evaluate.js';
import { silentProgress } from '../../src/train/progress.js';
import { trainerOptions } from '../../src/train/run-job.js';
import { formatEvalScores } from '../../src/train/trainer.js';
import { testBackend } from '../helpers/backend.js';
import { ensureSpmModel, SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

const MAX_NEW = 6;

test('evalMode: defaults to generate, per stage overridable, a wrong value names the field', () => {
  const stage = { name: 's', method: { name: 'prompt-tuning' }, tasks: ['demo-sentiment'] };
  const base = { backbone: '/unused', data: { suite: 'demo' } };
  const defaulted = parseJobConfig({ ...base, stages: [stage] });
  assert.equal(defaulted.stages[0]!.train.evalMode, 'generate');
  assert.equal(trainerOptions(defaulted.stages[0]!, silentProgress, 16).eval.mode, 'generate');
  const job = parseJobConfig({
    ...base,
    train: { evalMode: 'rank' },
    stages: [stage, { ...stage, name: 't', train: { evalMode: 'generate' } }],
  });
  assert.deepEqual(
    job.stages.map((s) => trainerOptions(s, silentProgress, 16).eval.mode),
    ['rank', 'generate'],
  );
  for (const [raw, field] of [
    [{ ...base, train: { evalMode: 'beam' }, stages: [stage] }, 'train.evalMode'],
    [{ ...base, stages: [{ ...stage, train: { evalMode: 1 } }] }, 'stages[0].train.evalMode'],
  ] as const) {
    assert.throws(
      () => parseJobConfig(raw),
      (e: unknown) =>
        e instanceof JobConfigError && e.field === field && /"generate", "rank"/.test(e.message),
      field,
    );
  }
});

test('eval lines say how many generated predictions were not a label', () => {
  assert.equal(
    formatEvalScores({
      scores: { 'demo-dining': 0, 'demo-count': 8 },
      invalid: { 'demo-dining': 100, 'demo-count': 0 },
      evaluated: { 'demo-dining': 100, 'demo-count': 100 },
    }),
    'demo-dining 0.0 (100/100 not a label), demo-count 8.0',
  );
});

describe('evaluateTask modes on a tiny T5', () => {
  let tokenizer: Tokenizer | undefined;
  let model: T5Model;
  let method: PromptMethod;
  let encoder: ExampleEncoder;
  let task: EvalTask;

  before(async () => {
    await selectBackend({ requested: testBackend() });
    const dir = await ensureSpmModel();
    if (!dir) return;
    tokenizer = await loadTokenizer(dir);
    const { config, tensors } = makeTinyT5({ variant: 'v1.1', seed: 3, vocabSize: tokenizer.vocabSize });
    model = T5Model.fromWeights(config, tensors);
    const f = methodFactory('prompt-tuning');
    method = f.create(f.parseConfig({ promptLength: 4 }), { model, tasks: ['demo-sentiment'], seed: 5 });
    encoder = new ExampleEncoder(tokenizer, { maxSourceLength: 32, maxTargetLength: MAX_NEW });
    const suite = generateDemoSuite({
      tasks: ['demo-sentiment'],
      sourceSizes: { train: 4, validation: 12, test: 4 },
    });
    const t = suite.tasks[0]!;
    task = { name: t.def.name, spec: getTask(t.def.name), examples: t.validation };
  });
  after(() => {
    method?.dispose();
    model?.dispose();
  });

  const opts = (mode: 'generate' | 'rank') => ({
    batchSize: 5,
    maxExamples: 0,
    maxNewTokens: MAX_NEW,
    mode,
    split: 'validation',
  });

  test('rank: the label with the highest log-likelihood, always a label', (t) => {
    if (!tokenizer) return t.skip(SPM_MISSING_MESSAGE);
    const labels = task.spec.labels!;
    const r = evaluateTask(model, method, encoder, task, opts('rank'));
    // Independently: each example's loss with each label as its target, one example and one label at a time.
    const expected = task.examples.map((e, i) => {
      const nll = labels.map((l) => {
        const batch = makeBatch(
          [encoder.encode(`rank-ref/${i}/${l}`, task.name, e.source, l)],
          tokenizer!.padId,
        );
        try {
          return tf.tidy(() => {
            const enc = method.encoderInputs(model, batch);
            return model
              .lossTerms({ ...enc, labels: batch.labels, labelMask: batch.labelMask })
              .nllSum.arraySync();
          });
        } finally {
          disposeBatch(batch);
        }
      });
      return labels[nll.indexOf(Math.min(...nll))]!;
    });
    assert.deepEqual(r.predictions, expected);
    assert.equal(r.invalid, 0);
  });

  test('onBatch hears every batch: examples predicted so far, and the total', (t) => {
    if (!tokenizer) return t.skip(SPM_MISSING_MESSAGE);
    const calls: [number, number][] = [];
    const r = evaluateTask(model, method, encoder, task, {
      ...opts('rank'),
      onBatch: (done, total) => calls.push([done, total]),
    });
    const n = task.examples.length;
    assert.ok(n > 5, `${n} examples: more than one batch of 5`);
    assert.deepEqual(
      calls,
      Array.from({ length: Math.ceil(n / 5) }, (_, i) => [Math.min(n, 5 * (i + 1)), n]),
    );
    assert.equal(r.predictions.length, n);
  });

  test('generate: the greedy string, matched as a string; one that is not a label is wrong', (t) => {
    if (!tokenizer) return t.skip(SPM_MISSING_MESSAGE);
    const tok = tokenizer;
    const r = evaluateTask(model, method, encoder, task, opts('generate'));
    // Independently: the uncached greedy decoder, one example at a time.
    const expected = task.examples.map((e, i) => {
      const batch = makeBatch([encoder.encode(`gen-ref/${i}`, task.name, e.source, e.target)], tok.padId);
      const enc = method.encoderInputs(model, batch);
      try {
        const [ids] = model.greedyDecode(enc.inputsEmbeds, enc.attentionMask, MAX_NEW, { kvCache: false });
        assert.ok(ids!.length <= MAX_NEW);
        return tok.decode(ids!).trim();
      } finally {
        tf.dispose([enc.inputsEmbeds, enc.attentionMask]);
        disposeBatch(batch);
      }
    });
    assert.deepEqual(r.predictions, expected);
    const labels = new Set(task.spec.labels);
    const notLabels = expected.filter((p) => !labels.has(p)).length;
    assert.equal(r.invalid, notLabels);
    const hits = expected.filter((p, i) => p === task.examples[i]!.target).length;
    assert.equal(r.metrics.accuracy, (100 * hits) / expected.length);

    // The modes differ here: this untrained checkpoint generates strings that are not labels, which generation
    // scores as wrong and label scoring never produces.
    assert.ok(notLabels > 0, `every generated string was a label: ${expected.join(' | ')}`);
    assert.notDeepEqual(evaluateTask(model, method, encoder, task, opts('rank')).predictions, r.predictions);

    // A generated string that is a label scores: with the generated strings as the labels and targets, generation
    // is right on every example.
    const asLabels: EvalTask = {
      name: task.name,
      spec: { metrics: ['accuracy'], labels: [...new Set(expected)] },
      examples: task.examples.map((e, i) => ({ source: e.source, target: expected[i]! })),
    };
    const right = evaluateTask(model, method, encoder, asLabels, opts('generate'));
    assert.equal(right.metrics.accuracy, 100);
    assert.equal(right.invalid, 0);
  });
});
