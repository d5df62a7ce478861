/**
 * Dropout in training (issue 12 item 4), trainer side: the rate follows the checkpoint unless the job overrides it,
 * masks depend only on (seed, step, example) so any split of a global batch gives the same gradients, a retried
 * step is the same step, rate 0 is the evaluation-mode pass, and evaluation never drops.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { selectBackend } from '../../src/backend/index.js';
import { JobConfigError, parseJobConfig } from '../../src/config/job-config.js';
import { generateDemoSuite } from '../../src/data/demo/index.js';
import { getTask } from '../../src/data/tasks/registry.js';
import { methodFactory, type PromptMethod } from '../../src/methods/index.js';
import { makeTinyT5 } from '../../src/model/checkpoint/index.js';
import { T5Model } from '../../src/model/t5/index.js';
import { loadTokenizer, type Tokenizer } from '../../src/model/tokenizer/index.js';
import { disposeBatch, type EncodedExample, ExampleEncoder, makeBatch } from '../../src/train/batching.js';
import { addGradientSums, type GradientSums, gradientSums } from '../../src/train/gradients.js';
import { silentProgress } from '../../src/train/progress.js';
import { trainerOptions } from '../../src/train/run-job.js';
import { Trainer, type TrainerOptions, type TrainTask } from '../../src/train/trainer.js';
import { testBackend } from '../helpers/backend.js';
import { ensureSpmModel, SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

const STAGE = {
  name: 's',
  method: { name: 'prompt-tuning', promptLength: 4 },
  tasks: ['demo-sentiment'],
};

test('job config: train.dropout absent or null follows the checkpoint, a number overrides, per stage', () => {
  const parse = (train: Record<string, unknown> | undefined, stageTrain?: Record<string, unknown>) =>
    parseJobConfig({
      backbone: '/unused',
      data: { suite: 'demo' },
      ...(train ? { train } : {}),
      stages: [{ ...STAGE, ...(stageTrain ? { train: stageTrain } : {}) }],
    }).stages[0]!.train.dropout;
  assert.equal(parse(undefined), null);
  assert.equal(parse({ dropout: null }), null);
  assert.equal(parse({ dropout: 0 }), 0);
  assert.equal(parse({ dropout: 0.2 }), 0.2);
  assert.equal(parse({ dropout: 0.2 }, { lr: 0.1 }), 0.2, 'a stage inherits the top-level rate');
  assert.equal(parse({ dropout: 0.2 }, { dropout: null }), null, 'a stage may go back to the checkpoint');
  assert.equal(parse(undefined, { dropout: 0.05 }), 0.05);
  for (const bad of [1, -0.1, '0.1', 1.5]) {
    assert.throws(
      () => parse({ dropout: bad }),
      (e: unknown) => e instanceof JobConfigError && e.field === 'train.dropout',
      String(bad),
    );
  }
  const job = parseJobConfig({
    backbone: '/unused',
    data: { suite: 'demo' },
    stages: [
      { ...STAGE, train: { dropout: 0.3 } },
      { ...STAGE, name: 't' },
    ],
  });
  assert.equal(trainerOptions(job.stages[0]!, silentProgress, 8).dropout, 0.3);
  assert.equal(
    'dropout' in trainerOptions(job.stages[1]!, silentProgress, 8),
    false,
    'absent: the checkpoint',
  );
});

describe('Trainer dropout on a tiny T5 with a real SentencePiece tokenizer', () => {
  let tokenizer: Tokenizer | undefined;
  let model: T5Model;
  let tasks: TrainTask[];
  let encoder: ExampleEncoder;
  let method: PromptMethod;

  before(async () => {
    await selectBackend({ requested: testBackend() });
    const dir = await ensureSpmModel();
    if (!dir) return;
    tokenizer = await loadTokenizer(dir);
    const { config, tensors } = makeTinyT5({
      variant: 'v1.1',
      seed: 3,
      vocabSize: tokenizer.vocabSize,
      dropoutRate: 0.2,
    });
    model = T5Model.fromWeights(config, tensors);
    const suite = generateDemoSuite({
      tasks: ['demo-sentiment', 'demo-topic'],
      sourceSizes: { train: 12, validation: 8, test: 4 },
    });
    tasks = suite.tasks.map((t) => ({
      name: t.def.name,
      spec: getTask(t.def.name),
      train: t.train,
      validation: t.validation,
    }));
    encoder = new ExampleEncoder(tokenizer, { maxSourceLength: 32, maxTargetLength: 4 });
    const f = methodFactory('prompt-tuning');
    method = f.create(f.parseConfig({ promptLength: 4, perTask: true }), {
      model,
      tasks: tasks.map((t) => t.name),
      seed: 5,
    });
  });
  after(() => {
    method?.dispose();
    model?.dispose();
  });

  const options = (microBatchSize: number, dropout?: number): TrainerOptions => ({
    steps: 4,
    batchSize: 8,
    microBatchSize,
    seed: 1,
    ...(dropout !== undefined ? { dropout } : {}),
    mixing: {},
    optimizer: { lr: { prompt: 0.3 }, weightDecay: 0, warmupSteps: 0, clipNorm: 1 },
    evalEvery: 0,
    eval: { batchSize: 8, maxExamples: 8, maxNewTokens: 4, mode: 'generate' },
  });
  const trainer = (microBatchSize: number, dropout?: number) =>
    new Trainer(model, method, encoder, tasks, options(microBatchSize, dropout));

  /** Worst |a - b| over every gradient, relative to the largest |a|. */
  const gradDiff = (a: GradientSums, b: GradientSums): number => {
    let worst = 0;
    let scale = 0;
    for (const [k, g] of a.grads) {
      const h = b.grads.get(k);
      assert.ok(h, `${k} missing`);
      g.forEach((x, i) => {
        worst = Math.max(worst, Math.abs(x - h[i]!));
        scale = Math.max(scale, Math.abs(x));
      });
    }
    return worst / scale;
  };
  test("the rate is the checkpoint's dropout_rate unless the options override it", (t) => {
    if (!tokenizer) return t.skip(SPM_MISSING_MESSAGE);
    assert.equal(trainer(8).dropout, 0.2);
    assert.equal(trainer(8, 0).dropout, 0);
    assert.equal(trainer(8, 0.5).dropout, 0.5);
    assert.throws(() => trainer(8, 1), /dropout must be in \[0, 1\)/);
  });

  test('masks depend on (seed, step, example) only: alone, in micro-batches of any size, or retried', (t) => {
    if (!tokenizer) return t.skip(SPM_MISSING_MESSAGE);
    const whole = trainer(8);
    const ex = whole.encodeBatch(whole.sampler.globalBatch(2));
    const reference = whole.gradientSums(ex, 2);
    const TOL = 1e-5;
    // Other micro-batch sizes, another order of the examples, each example alone (as workers holding one each).
    const bySize = [3, 1].map((m) => trainer(m).gradientSums(ex, 2));
    const reversed = trainer(3).gradientSums([...ex].reverse(), 2);
    const alone = ex
      .map((e) => trainer(1).gradientSums([e], 2))
      .reduce((acc, g) => addGradientSums(acc, g), {
        grads: new Map(),
        nllSum: 0,
        tokens: 0,
        perTask: new Map(),
      });
    for (const [name, got] of [
      ['micro-batch 3', bySize[0]!],
      ['micro-batch 1', bySize[1]!],
      ['reversed', reversed],
      ['each alone', alone],
    ] as const) {
      const d = gradDiff(reference, got);
      t.diagnostic(`${name}: worst relative gradient difference ${d.toExponential(2)}`);
      assert.ok(d < TOL, `${name}: gradients differ by ${d}`);
      assert.ok(Math.abs(got.nllSum - reference.nllSum) < 1e-5 * reference.nllSum, `${name}: loss`);
    }
    // A retried step draws the same masks exactly; another step or seed draws others.
    const retry = whole.gradientSums(ex, 2);
    assert.deepEqual(retry.grads, reference.grads);
    assert.equal(retry.nllSum, reference.nllSum);
    const otherStep = whole.gradientSums(ex, 3);
    const otherSeed = new Trainer(model, method, encoder, tasks, { ...options(8), seed: 2 }).gradientSums(
      ex,
      2,
    );
    const off = trainer(8, 0).gradientSums(ex, 2);
    for (const [name, got] of [
      ['another step', otherStep],
      ['another seed', otherSeed],
      ['no dropout', off],
    ] as const) {
      assert.ok(gradDiff(reference, got) > 100 * TOL, `${name} should change the gradients`);
    }
  });

  test('rate 0 is the evaluation-mode pass exactly', (t) => {
    if (!tokenizer) return t.skip(SPM_MISSING_MESSAGE);
    const off = trainer(8, 0);
    const ex: EncodedExample[] = off.encodeBatch(off.sampler.globalBatch(0));
    const got = off.gradientSums(ex, 0);
    const batch = makeBatch(ex, tokenizer.padId);
    try {
      const plain = gradientSums(model, method, batch);
      assert.deepEqual(got.grads, plain.grads);
      assert.equal(got.nllSum, plain.nllSum);
    } finally {
      disposeBatch(batch);
    }
  });

  test('evaluation never drops: the same scores whatever the training rate', (t) => {
    if (!tokenizer) return t.skip(SPM_MISSING_MESSAGE);
    assert.deepEqual(trainer(8, 0.5).evaluate(0), trainer(8, 0).evaluate(0));
  });
});
