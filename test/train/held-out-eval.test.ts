/** A stage evaluated on tasks outside its training mixture (eval.tasks): config checks and SPT zero-shot via runJob. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { selectBackend } from '../../src/backend/index.js';
import { JobConfigError, parseJobConfig } from '../../src/config/job-config.js';
import { makeTinyT5 } from '../../src/model/checkpoint/index.js';
import { T5Model } from '../../src/model/t5/index.js';
import { loadTokenizer } from '../../src/model/tokenizer/index.js';
import { silentProgress } from '../../src/train/progress.js';
import { runJob } from '../../src/train/run-job.js';
import { testBackend } from '../helpers/backend.js';
import { ensureSpmModel, SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

const BASE = { backbone: '/unused', data: { suite: 'demo' } };

function fieldOf(raw: unknown): string | undefined {
  try {
    parseJobConfig(raw);
  } catch (err) {
    assert.ok(err instanceof JobConfigError, String(err));
    return err.field;
  }
  return undefined;
}

test('eval.tasks: defaults to the stage tasks, is validated, and needs a method that serves unseen tasks', () => {
  const stage = { name: 's', method: { name: 'spt' }, tasks: ['demo-sentiment', 'demo-nli'] };
  assert.deepEqual(parseJobConfig({ ...BASE, stages: [stage] }).stages[0]!.eval.tasks, [
    'demo-sentiment',
    'demo-nli',
  ]);
  const held = parseJobConfig({
    ...BASE,
    stages: [{ ...stage, eval: { tasks: ['demo-nli', 'demo-topic'] } }],
  });
  assert.deepEqual(held.stages[0]!.eval.tasks, ['demo-nli', 'demo-topic']);
  // A single-stage job may give eval at the top level, beside method and tasks.
  const top = parseJobConfig({
    ...BASE,
    method: stage.method,
    tasks: stage.tasks,
    eval: { tasks: ['demo-topic'] },
  });
  assert.deepEqual(top.stages[0]!.eval.tasks, ['demo-topic']);

  const at = (s: Record<string, unknown>) => fieldOf({ ...BASE, stages: [{ ...stage, ...s }] });
  assert.equal(at({ eval: { tasks: ['demo-nli', 'demo-nli'] } }), 'stages[0].eval.tasks');
  assert.equal(at({ eval: { tasks: [] } }), 'stages[0].eval.tasks');
  assert.equal(at({ eval: { task: ['demo-nli'] } }), 'stages[0].eval.task');
  assert.equal(at({ eval: ['demo-nli'] }), 'stages[0].eval');
  // Per-task tensors cannot run a held-out task: refused at parse time, naming the task.
  const perTask = { eval: { tasks: ['demo-topic'] }, method: { name: 'spt', sharedPrompt: false } };
  assert.equal(at(perTask), 'stages[0].eval.tasks');
  assert.throws(() => parseJobConfig({ ...BASE, stages: [{ ...stage, ...perTask }] }), /demo-topic/);
  assert.equal(
    at({ eval: { tasks: ['demo-topic'] }, method: { name: 'prompt-tuning', perTask: true } }),
    'stages[0].eval.tasks',
  );
  assert.equal(at({ eval: { tasks: ['demo-topic'] }, method: { name: 'prompt-tuning' } }), undefined);
  // Listing only the stage's own tasks never needs that capability.
  assert.equal(
    at({ eval: { tasks: ['demo-nli'] }, method: { name: 'spt', sharedPrompt: false } }),
    undefined,
  );
  assert.equal(
    fieldOf({ ...BASE, stages: [stage], eval: { tasks: ['demo-nli'] } }),
    'stages',
    'eval at the top level beside stages',
  );
});

test('runJob: SPT trained on two tasks evaluates a held-out task zero-shot', async (t) => {
  await selectBackend({ requested: testBackend() });
  const dir = await ensureSpmModel();
  if (!dir) return t.skip(SPM_MISSING_MESSAGE);
  const tokenizer = await loadTokenizer(dir);
  const { config, tensors } = makeTinyT5({ variant: 'v1.1', seed: 3, vocabSize: tokenizer.vocabSize });
  const model = T5Model.fromWeights(config, tensors);
  const trained = ['demo-sentiment', 'demo-nli'];
  const heldOut = 'demo-topic';
  const job = parseJobConfig({
    ...BASE,
    maxSourceLength: 32,
    maxTargetLength: 8,
    stages: [
      {
        name: 'spt',
        method: { name: 'spt', memorySlots: 8, memoryLength: 4, topK: 2, promptLength: 6 },
        tasks: trained,
        eval: { tasks: [...trained, heldOut] },
        train: { steps: 2, batchSize: 4, microBatchSize: 4, warmupSteps: 0, evalEvery: 1, evalExamples: 6 },
      },
    ],
  });
  try {
    const [r] = await runJob(job, { model, tokenizer, progress: silentProgress });
    const final = r!.final!;
    assert.deepEqual(Object.keys(final.scores), [...trained, heldOut]);
    assert.ok(Number.isFinite(final.scores[heldOut]), `held-out score ${final.scores[heldOut]}`);
    assert.deepEqual(final.heldOut?.tasks, [heldOut]);
    assert.equal(final.heldOut?.average, final.scores[heldOut]);
    // The average that picks the best parameters is over the trained tasks only.
    assert.equal(final.average, (final.scores[trained[0]!]! + final.scores[trained[1]!]!) / 2);
    // The method keeps no tensor for the held-out task.
    assert.deepEqual([...r!.tensors.keys()], ['memory', 'keys', 'prompt']);
  } finally {
    model.dispose();
  }
});
