/** TPT's two stages and SPT through the real job pipeline: stage tensors, learning-rate groups. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { selectBackend } from '../../src/backend/index.js';
import { demoJob } from '../../src/config/demo-job.js';
import { parseJobConfig } from '../../src/config/job-config.js';
import { DEMO_TASKS } from '../../src/data/demo/index.js';
import { rangeInit } from '../../src/methods/tpt/index.js';
import { makeTinyT5 } from '../../src/model/checkpoint/index.js';
import { T5Model } from '../../src/model/t5/index.js';
import { loadTokenizer } from '../../src/model/tokenizer/index.js';
import { silentProgress } from '../../src/train/progress.js';
import { runJob } from '../../src/train/run-job.js';
import { testBackend } from '../helpers/backend.js';
import { ensureSpmModel, SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';
import { maxAbsDiff } from './tpt-spt-helpers.js';

test('job: TPT bank stage -> target stage (bankFrom), and SPT (per-example retrieval)', async (t) => {
  await selectBackend({ requested: testBackend() });
  const dir = await ensureSpmModel();
  if (!dir) return t.skip(SPM_MISSING_MESSAGE);
  const tokenizer = await loadTokenizer(dir);
  const { config, tensors } = makeTinyT5({ variant: 'v1.1', seed: 3, vocabSize: tokenizer.vocabSize });
  const model = T5Model.fromWeights(config, tensors);
  const base = demoJob({ steps: 3 });
  const sources = DEMO_TASKS.filter((x) => x.role === 'source').map((x) => x.name);
  const targets = DEMO_TASKS.filter((x) => x.role === 'target').map((x) => x.name);
  const train = { ...base.stages[0]!.train, steps: 3, batchSize: 8, microBatchSize: 8, evalExamples: 8 };
  const job = parseJobConfig(
    {
      jobId: 'tpt-spt',
      backbone: base.backbone,
      data: base.data,
      maxSourceLength: 32,
      maxTargetLength: 8,
      stages: [
        {
          name: 'bank',
          method: { name: 'tpt', stage: 'bank', bankSize: 40, topK: 8 },
          tasks: sources,
          train: { ...train, lr: { bank: 0.3 } },
        },
        {
          name: 'target',
          method: { name: 'tpt', bankFrom: 'bank', bankSize: 40, topK: 8, taskPromptLength: 10 },
          tasks: targets,
          train,
        },
        {
          name: 'spt',
          method: { name: 'spt', memorySlots: 8, memoryLength: 4, topK: 2, promptLength: 10 },
          tasks: targets,
          train: { ...train, lr: { prompt: 0.3, memory: 0.1 } },
        },
      ],
    },
    { source: 'tpt-spt job test' },
  );
  try {
    const [bank, target, spt] = await runJob(job, { model, tokenizer, progress: silentProgress });
    const trainedBank = bank!.tensors.get('bank')!;
    // Stage 1 trained the bank away from its vocabulary initialisation.
    const initial = rangeInit(model, 40, [100, 1000], job.stages[0]!.train.seed, 'bank');
    assert.ok(maxAbsDiff(trainedBank.data, initial) > 1e-3, 'stage 1 did not move the bank');
    // Stage 2 carries the stage-1 bank unchanged (frozen) and trains one prompt per target task.
    assert.equal(maxAbsDiff(target!.tensors.get('bank')!.data, trainedBank.data), 0);
    assert.deepEqual(
      [...target!.tensors.keys()].sort(),
      ['bank', ...targets.map((x) => `prompt.${x}`)].sort(),
    );
    assert.deepEqual([...spt!.tensors.keys()], ['memory', 'keys', 'prompt']);
    for (const r of [bank, target, spt]) assert.ok(r!.final, `${r!.stage} has an evaluation`);
  } finally {
    model.dispose();
  }
});
