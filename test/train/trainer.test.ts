import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { generateDemoSuite } from '../../src/data/demo/index.js';
import { getTask } from '../../src/data/tasks/registry.js';
import { methodFactory } from '../../src/methods/index.js';
import { makeTinyT5 } from '../../src/model/checkpoint/index.js';
import { T5Model } from '../../src/model/t5/index.js';
import { loadTokenizer, type Tokenizer } from '../../src/model/tokenizer/index.js';
import { AdamW } from '../../src/train/adamw.js';
import { ExampleEncoder } from '../../src/train/batching.js';
import { clipGlobalNorm } from '../../src/train/clip.js';
import { PromptOptimizer } from '../../src/train/prompt-optimizer.js';
import { linearWarmupDecay } from '../../src/train/schedule.js';
import { loadTrainedState, saveTrainedState } from '../../src/train/trained-state.js';
import { Trainer, type TrainerOptions, type TrainTask } from '../../src/train/trainer.js';
import { testBackend } from '../helpers/backend.js';
import { ensureSpmModel, SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

test('linear warm-up and decay follow transformers', () => {
  // warmup 4, total 10: k/4 for k < 4, then (10-k)/6.
  assert.deepEqual(
    [0, 1, 2, 3, 4, 7, 10, 12].map((k) => linearWarmupDecay(k, 4, 10)),
    [0, 0.25, 0.5, 0.75, 1, 0.5, 0, 0],
  );
});

test('AdamW matches a hand-computed step', () => {
  // Step 1 with g = 0.5, lr 0.1, wd 0.01: p = 1 * (1 - 0.001) = 0.999; m = 0.05, v = 0.00025;
  // m_hat = 0.5, v_hat = 0.25; p = 0.999 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.899.
  const adam = new AdamW({ weightDecay: 0.01 });
  const p = Float32Array.of(1);
  adam.update('p', p, Float32Array.of(0.5), 0.1);
  assert.ok(Math.abs(p[0]! - 0.899) < 1e-6, String(p[0]));
  // A parameter without a gradient is left alone, moments included.
  assert.equal(adam.snapshot().get('p')!.step, 1);
});

test('global-norm clipping scales every gradient together', () => {
  const a = Float32Array.of(3, 0);
  const b = Float32Array.of(4);
  assert.equal(clipGlobalNorm([a, b], 1), 5);
  assert.ok(Math.abs(a[0]! - 0.6) < 1e-6 && Math.abs(b[0]! - 0.8) < 1e-6);
});

describe('Trainer on a tiny T5 with a real SentencePiece tokenizer', () => {
  let tokenizer: Tokenizer | undefined;
  let model: T5Model;
  let tasks: TrainTask[];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-train-'));

  before(async () => {
    await selectBackend({ requested: testBackend() });
    const dir = await ensureSpmModel();
    if (!dir) return;
    tokenizer = await loadTokenizer(dir);
    const { config, tensors } = makeTinyT5({ variant: 'v1.1', seed: 3, vocabSize: tokenizer.vocabSize });
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
  });
  after(() => {
    model?.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const options = (steps: number, microBatchSize: number): TrainerOptions => ({
    steps,
    batchSize: 8,
    microBatchSize,
    seed: 1,
    mixing: {},
    optimizer: { lr: { prompt: 1 }, weightDecay: 1e-5, warmupSteps: 0, clipNorm: 1 },
    evalEvery: 0,
    eval: { batchSize: 8, maxExamples: 8, maxNewTokens: 4, mode: 'generate' },
  });
  const promptTuning = (perTask: boolean) => {
    const f = methodFactory('prompt-tuning');
    return f.create(f.parseConfig({ promptLength: 8, perTask }), {
      model,
      tasks: tasks.map((t) => t.name),
      seed: 5,
    });
  };

  test('micro-batch accumulation gives the same gradient sums as one batch', (t) => {
    if (!tokenizer) return t.skip(SPM_MISSING_MESSAGE);
    const method = promptTuning(true);
    const encoder = new ExampleEncoder(tokenizer, { maxSourceLength: 32, maxTargetLength: 4 });
    const whole = new Trainer(model, method, encoder, tasks, options(1, 8));
    const parts = new Trainer(model, method, encoder, tasks, options(1, 3));
    const ex = whole.encodeBatch(whole.sampler.globalBatch(0));
    const a = whole.gradientSums(ex, 0);
    const b = parts.gradientSums(ex, 0);
    assert.equal(a.tokens, b.tokens);
    assert.ok(Math.abs(a.nllSum - b.nllSum) < 1e-3 * Math.abs(a.nllSum));
    for (const [k, g] of a.grads) {
      const h = b.grads.get(k)!;
      const diff = Math.max(...g.map((x, i) => Math.abs(x - h[i]!)));
      assert.ok(diff < 1e-4, `${k} differs by ${diff}`);
    }
    method.dispose();
  });

  test("per-group learning rates: ATTEMPT's attention module moves at its own rate, its prompts at theirs", (t) => {
    if (!tokenizer) return t.skip(SPM_MISSING_MESSAGE);
    const f = methodFactory('attempt');
    const d = model.config.dModel;
    const sources = ['prompt.s1', 'prompt.s2'];
    const inputs = new Map(
      sources.map((n, i) => [
        n,
        { shape: [4, d], data: Float32Array.from({ length: 4 * d }, (_, j) => Math.sin(i + j)) },
      ]),
    );
    const method = f.create(f.parseConfig({ promptLength: 4, attentionDim: 4, sources }), {
      model,
      tasks: ['demo-sentiment'],
      seed: 2,
      inputs,
    });
    const groups = new Set(method.params.map((p) => p.group));
    assert.deepEqual([...groups].sort(), ['attention', 'prompt']);
    const opt = new PromptOptimizer(method, {
      lr: { prompt: 0.1, attention: 0.001 },
      weightDecay: 0,
      warmupSteps: 0,
      totalSteps: 10,
      clipNorm: 0,
    });
    const start = opt.parameters();
    // Adam's first step moves every coordinate by lr * g / |g| (bias-corrected), so the step size is the group's lr.
    opt.apply(new Map(method.params.map((p) => [p.name, new Float32Array(p.variable.size).fill(0.5)])));
    const now = opt.parameters();
    for (const p of method.params) {
      const lr = p.group === 'attention' ? 0.001 : 0.1;
      const a = start.get(p.name)!;
      const b = now.get(p.name)!;
      for (let i = 0; i < a.length; i++) {
        assert.ok(Math.abs(a[i]! - b[i]! - lr) < 1e-5 * Math.max(1, Math.abs(a[i]!)), `${p.name}[${i}]`);
      }
      assert.deepEqual(p.variable.dataSync(), b, `${p.name}: the variable holds the update`);
    }
    method.dispose();
  });

  test('run(): live progress (step, loss per task, ex/s, ETA), evaluation every N steps, the best kept', (t) => {
    if (!tokenizer) return t.skip(SPM_MISSING_MESSAGE);
    const method = promptTuning(true);
    const encoder = new ExampleEncoder(tokenizer, { maxSourceLength: 32, maxTargetLength: 4 });
    const updates: string[] = [];
    const logs: string[] = [];
    const trainer = new Trainer(model, method, encoder, tasks, {
      ...options(6, 8),
      evalEvery: 2,
      progress: { update: (l) => updates.push(l), log: (l) => logs.push(l), done() {} },
    });
    const result = trainer.run();
    assert.equal(updates.length, 6);
    updates.forEach((line, i) => {
      assert.match(line, new RegExp(`^step ${i + 1}/6 loss \\d+\\.\\d{4} \\| `), line);
      assert.match(line, /demo-sentiment \d+\.\d{3}/, line);
      assert.match(line, /demo-topic \d+\.\d{3}/, line);
      assert.match(line, /\| \d+\.\d ex\/s \| ETA \d+(s|m\d\ds)$/, line);
    });
    assert.deepEqual(
      result.evals.map((e) => e.step),
      [2, 4, 6],
    );
    assert.deepEqual(
      logs.map((l) => l.match(/^eval @ step (\d+): average/)?.[1]),
      ['2', '4', '6'],
    );
    for (const e of result.evals)
      assert.deepEqual(Object.keys(e.scores).sort(), ['demo-sentiment', 'demo-topic']);
    const bestAverage = Math.max(...result.evals.map((e) => e.average));
    assert.equal(result.best?.average, bestAverage);
    assert.equal(logs.filter((l) => l.includes('(best)')).length >= 1, true);
    const first = result.evals.findIndex((e) => e.average === bestAverage);
    assert.match(logs[first]!, /\(best\)/);
    method.dispose();
  });

  test('evalAtStart: the untrained prompt is scored at step 0, reported first, never kept as the best, and changes no training bit', (t) => {
    if (!tokenizer) return t.skip(SPM_MISSING_MESSAGE);
    const encoder = new ExampleEncoder(tokenizer, { maxSourceLength: 32, maxTargetLength: 4 });
    const run = (evalAtStart: boolean) => {
      const method = promptTuning(true);
      const reports: string[] = [];
      const logs: string[] = [];
      const losses: number[] = [];
      const trainer = new Trainer(model, method, encoder, tasks, {
        ...options(4, 8),
        evalEvery: 2,
        evalAtStart,
        eval: { batchSize: 8, maxExamples: 8, maxNewTokens: 4, mode: 'rank' },
        progress: { update() {}, log: (l) => logs.push(l), done() {} },
        onReport: (r) => {
          if ('eval' in r) reports.push(`eval ${r.eval.step}`);
          else {
            reports.push(`step ${r.step.step}`);
            losses.push(r.step.loss);
          }
        },
      });
      const initial = trainer.optimizer.parameters();
      const result = trainer.run();
      const final = trainer.optimizer.parameters();
      // The worker's way of scoring step 0 after training (runtime/worker/worker.ts): the method's variables set
      // to the initial parameters for the evaluation, and back; the optimizer's state never moves.
      const checksum = trainer.optimizer.checksum();
      const again = trainer.optimizer.withParameters(initial, () => trainer.evaluate(0));
      assert.equal(trainer.optimizer.checksum(), checksum);
      const after = trainer.evaluate(4);
      method.dispose();
      return { result, reports, logs, losses, initial, final, again, after };
    };
    const withIt = run(true);
    const without = run(false);
    const { result } = withIt;
    assert.equal(result.initial?.step, 0);
    assert.deepEqual(withIt.reports, ['eval 0', 'step 0', 'step 1', 'eval 2', 'step 2', 'step 3', 'eval 4']);
    assert.match(
      withIt.logs[0]!,
      /^eval @ step 0 \(untrained\): average \d+\.\d\d \| demo-sentiment \d+\.\d, demo-topic/,
    );
    assert.doesNotMatch(withIt.logs[0]!, /best/);
    assert.deepEqual(
      result.evals.map((e) => e.step),
      [2, 4],
    );
    assert.equal(without.result.initial, undefined);
    assert.deepEqual(
      without.reports.filter((r) => r.startsWith('eval')),
      ['eval 2', 'eval 4'],
    );
    // Not a candidate for the best: the best is a trained step's, and so are the parameters kept, even where the
    // untrained prompt scores as well (rank scoring on 8 examples of a random backbone ties often).
    t.diagnostic(
      `averages: step 0 ${result.initial!.average}, ${result.evals.map((e) => `step ${e.step} ${e.average}`).join(', ')}`,
    );
    assert.ok(result.best && result.best.step > 0, `best at step ${result.best?.step}`);
    assert.deepEqual(result.bestParams, without.result.bestParams);
    assert.notDeepEqual(result.bestParams, withIt.initial);
    // Training is the same to the bit with and without the extra evaluation.
    assert.deepEqual(withIt.losses, without.losses);
    assert.deepEqual(withIt.final, without.final);
    assert.deepEqual(result.evals, without.result.evals);
    // Scoring the step-0 parameters later (as a worker does) gives the step-0 scores; the live ones are untouched.
    assert.deepEqual(withIt.again.scores, result.initial!.scores);
    assert.deepEqual(withIt.after.scores, result.evals[1]!.scores);

    // A tie, where a step-0 candidate would win (the first of equal averages is kept): learning rate 0 leaves the
    // prompt as created, so every evaluation scores the same, and the best is still the first trained one.
    const method = promptTuning(true);
    const still = new Trainer(model, method, encoder, tasks, {
      ...options(2, 8),
      optimizer: { lr: { prompt: 0 }, weightDecay: 1e-5, warmupSteps: 0, clipNorm: 1 },
      evalEvery: 1,
      evalAtStart: true,
      eval: { batchSize: 8, maxExamples: 8, maxNewTokens: 4, mode: 'rank' },
    }).run();
    method.dispose();
    assert.deepEqual(
      still.evals.map((e) => e.scores),
      [still.initial!.scores, still.initial!.scores],
    );
    assert.equal(still.best?.step, 1);
  });

  test('training lowers the loss, leaks no tensors, and saves/loads its state', (t) => {
    if (!tokenizer) return t.skip(SPM_MISSING_MESSAGE);
    const method = promptTuning(true);
    const encoder = new ExampleEncoder(tokenizer, { maxSourceLength: 32, maxTargetLength: 4 });
    const trainer = new Trainer(model, method, encoder, tasks, options(25, 8));
    assert.equal(trainer.dropout, 0.1, "training drops at the checkpoint's rate");
    // Loss on a fixed batch before and after training (per-step losses are on different batches: noisy), measured
    // without dropout, as evaluation sees the model.
    const measure = new Trainer(model, method, encoder, tasks, { ...options(25, 8), dropout: 0 });
    const fixed = trainer.encodeBatch(trainer.sampler.globalBatch(0));
    const lossOf = () => {
      const g = measure.gradientSums(fixed, 0);
      return g.nllSum / g.tokens;
    };
    const before = lossOf();
    trainer.trainStep(0);
    const tensorsAfterFirst = tf.memory().numTensors;
    for (let s = 1; s < 25; s++) trainer.trainStep(s);
    assert.equal(tf.memory().numTensors, tensorsAfterFirst, 'tensor count grew across steps');
    const afterTraining = lossOf();
    t.diagnostic(`loss on a fixed batch: ${before} -> ${afterTraining}`);
    // A random 16-wide backbone limits what a prompt can do; the drop is deterministic (fixed seeds), ~11% (13% when
    // training without dropout).
    assert.ok(afterTraining < before * 0.92, `loss did not go down: ${before} -> ${afterTraining}`);
    const evalReport = trainer.evaluate(25);
    assert.deepEqual(Object.keys(evalReport.scores).sort(), ['demo-sentiment', 'demo-topic']);

    const params = trainer.optimizer.parameters();
    saveTrainedState(tmp, {
      manifest: {
        job: 'test',
        stage: 'only',
        method: 'prompt-tuning',
        methodConfig: {},
        tasks: tasks.map((x) => x.name),
        step: 25,
        tensors: Object.fromEntries(
          method.params.map((p) => [p.name, { shape: p.variable.shape, trainable: true }]),
        ),
        metrics: { validationAverage: evalReport.average },
        backbone: { dModel: model.config.dModel, vocabSize: model.config.vocabSize },
        createdAt: new Date().toISOString(),
      },
      tensors: new Map(
        method.params.map((p) => [p.name, { shape: p.variable.shape, data: params.get(p.name)! }]),
      ),
    });
    const loaded = loadTrainedState(tmp);
    for (const p of method.params) assert.deepEqual(loaded.tensors.get(p.name)!.data, params.get(p.name));
    method.dispose();
  });
});
