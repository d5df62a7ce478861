import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { selectBackend } from '../../src/backend/index.js';
import { parseJobConfig } from '../../src/config/job-config.js';
import { makeTinyT5 } from '../../src/model/checkpoint/index.js';
import { T5Model } from '../../src/model/t5/index.js';
import { loadTokenizer, type Tokenizer } from '../../src/model/tokenizer/index.js';
import { silentProgress } from '../../src/train/progress.js';
import { runJob, trainerOptions } from '../../src/train/run-job.js';
import { loadTrainedState } from '../../src/train/trained-state.js';
import { testBackend } from '../helpers/backend.js';
import { ensureSpmModel, SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

let tokenizer: Tokenizer | undefined;
let model: T5Model;
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-job-'));

before(async () => {
  await selectBackend({ requested: testBackend() });
  const dir = await ensureSpmModel();
  if (!dir) return;
  tokenizer = await loadTokenizer(dir);
  const { config, tensors } = makeTinyT5({ variant: 'v1.1', seed: 4, vocabSize: tokenizer.vocabSize });
  model = T5Model.fromWeights(config, tensors);
});
after(() => {
  model?.dispose();
  fs.rmSync(out, { recursive: true, force: true });
});

test('two-stage pipeline: source prompts, then ATTEMPT over them; evaluation keeps the best; state saved', async (t) => {
  if (!tokenizer) return t.skip(SPM_MISSING_MESSAGE);
  const train = { steps: 4, batchSize: 8, microBatchSize: 8, warmupSteps: 0, evalEvery: 2, evalExamples: 8 };
  const job = parseJobConfig({
    backbone: '/unused',
    data: { suite: 'demo' },
    maxSourceLength: 24,
    maxTargetLength: 4,
    stages: [
      {
        name: 'sources',
        method: { name: 'prompt-tuning', perTask: true, promptLength: 4 },
        tasks: ['demo-sentiment', 'demo-topic'],
        train,
      },
      {
        name: 'targets',
        method: {
          name: 'attempt',
          multiTask: true,
          promptLength: 4,
          attentionDim: 4,
          sources: ['prompt.demo-sentiment', 'prompt.demo-topic'],
        },
        tasks: ['demo-entail', 'demo-dining'],
        train,
      },
    ],
  });
  const results = await runJob(job, { out, model, tokenizer });
  assert.deepEqual(
    results.map((r) => r.stage),
    ['sources', 'targets'],
  );
  for (const r of results) {
    // evalEvery 2 over 4 steps: evaluations at steps 2 and 4; the best is the max average.
    assert.ok(r.best && r.final);
    assert.ok(r.best.average >= r.final.average);
  }
  const stage1 = loadTrainedState(path.join(out, 'sources'));
  const stage2 = loadTrainedState(path.join(out, 'targets'));
  assert.equal(stage1.manifest.method, 'prompt-tuning');
  assert.deepEqual(Object.keys(stage1.manifest.tensors).sort(), [
    'prompt.demo-sentiment',
    'prompt.demo-topic',
  ]);
  // ATTEMPT carries the trained source prompts, frozen, exactly as stage 1 left them.
  for (const name of ['prompt.demo-sentiment', 'prompt.demo-topic']) {
    const src = [...stage2.tensors.keys()].find((k) => k.endsWith(name));
    assert.ok(src, `stage 2 lacks a copy of ${name}: ${[...stage2.tensors.keys()].join(', ')}`);
    assert.deepEqual(stage2.tensors.get(src)!.data, stage1.tensors.get(name)!.data);
    assert.equal(stage2.manifest.tensors[src]!.trainable, false);
  }
  assert.ok(stage2.manifest.tensors['attention.down']?.trainable);
});

test('maxTargetLength defaults to 128 and bounds both training targets and generated answers', () => {
  const stage = { name: 's', method: { name: 'prompt-tuning' }, tasks: ['demo-sentiment'] };
  const defaulted = parseJobConfig({ backbone: '/unused', data: { suite: 'demo' }, stages: [stage] });
  assert.equal(defaulted.maxTargetLength, 128);
  const job = parseJobConfig({
    backbone: '/unused',
    data: { suite: 'demo' },
    maxTargetLength: 40,
    stages: [stage],
  });
  assert.equal(job.maxTargetLength, 40);
  const opts = trainerOptions(job.stages[0]!, silentProgress, job.maxTargetLength);
  assert.equal(opts.eval.maxNewTokens, 40);
});
