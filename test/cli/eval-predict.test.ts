/**
 * `promptmesh eval` and `promptmesh predict` on the versions a real tiny training run leaves in its bank
 * (`promptmesh up` with one worker on the runtime fixture's two-stage job: prompt tuning, then ATTEMPT):
 * - eval of each stage's final version gives exactly the metrics the stage recorded in it;
 * - predict over a file mixing the tasks gives, row for row, the predictions of per-task evaluation, and their
 *   accuracy is the recorded score;
 * - malformed lines and unserved tasks are refused naming FILE:LINE.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { openServedVersion, parsePredictRow } from '../../src/infer/index.js';
import { loadT5Model } from '../../src/model/load-t5.js';
import { loadTokenizer } from '../../src/model/tokenizer/index.js';
import { ExampleEncoder } from '../../src/train/batching.js';
import { evaluateTask } from '../../src/train/evaluate.js';
import { loadTrainTasks } from '../../src/train/task-source.js';
import { testBackend } from '../helpers/backend.js';
import { cli } from '../helpers/cli.js';
import { natsSkipReason } from '../helpers/nats.js';
import {
  type CliProcess,
  expectExit,
  killAll,
  makeRuntimeFixture,
  type RuntimeFixture,
  spawnCli,
} from '../helpers/runtime-fixture.js';
import { SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

describe('eval and predict on versions a training run wrote', { skip: natsSkipReason() }, () => {
  let fx: RuntimeFixture | undefined;
  const procs: CliProcess[] = [];
  before(async () => {
    fx = await makeRuntimeFixture({ jobId: 'ev', steps: [4, 3] });
    if (!fx) return;
    const up = spawnCli(
      'up',
      ['up', '--workers', '1', '--config', fx.jobFile, '--bank', fx.bankDir, '--backend', testBackend()],
      { NATS_URL: '' },
    );
    procs.push(up);
    assert.equal(await expectExit(up, 180_000), 0, up.output());
  });
  after(async () => {
    await killAll(procs);
    fx?.cleanup();
  });

  const common = () => ['--bank', fx!.bankDir, '--config', fx!.jobFile, '--backend', testBackend()];

  test('eval of each stage’s final version equals the metrics the stage recorded', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    for (const tag of ['ev.s1', 'ev.s2']) {
      const r = await cli('eval', tag, ...common(), '--json');
      assert.equal(r.code, 0, r.stderr);
      const rep = JSON.parse(r.stdout) as {
        stage: string;
        versionMetrics: Record<string, number>;
        recorded: Record<string, number>;
        evaluated: Record<string, number>;
      };
      assert.equal(rep.stage, tag.slice(3));
      assert.ok(Object.keys(rep.recorded).length > 2, `${tag} recorded no metrics`);
      assert.deepEqual(rep.versionMetrics, rep.recorded, tag);
      for (const n of Object.values(rep.evaluated)) assert.equal(n, 8);
    }
    // Without --config: the job the version recorded (job.json) gives the same report.
    const withConfig = await cli('eval', 'ev.s2', ...common(), '--json');
    const recorded = await cli('eval', 'ev.s2', '--bank', fx.bankDir, '--backend', testBackend(), '--json');
    assert.equal(recorded.code, 0, recorded.stderr);
    assert.deepEqual(JSON.parse(recorded.stdout).evaluated, JSON.parse(withConfig.stdout).evaluated);
    assert.deepEqual(JSON.parse(recorded.stdout).recorded, JSON.parse(withConfig.stdout).recorded);
    // The text form names the version, stage and every task.
    const text = await cli('eval', 'ev.s2', ...common());
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /stage s2, attempt, step 3\) on validation: average \d+\.\d\d \| demo-entail/);
    assert.match(text.stdout, /demo-dining: accuracy/);
  });

  test('predict over mixed tasks equals per-task evaluation, row for row, in input order', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const job = fx.job();
    const stage = job.stages[1]!;
    const tasks = loadTrainTasks(job.data, stage.tasks);
    // Interleave the two tasks' validation examples (the 8 each the stage evaluated).
    const rows: { task: string; source: string; target: string }[] = [];
    for (let i = 0; i < 8; i++)
      for (const task of tasks) rows.push({ task: task.name, ...task.validation[i]! });
    const file = path.join(fx.dir, 'rows.jsonl');
    fs.writeFileSync(
      file,
      `${rows.map((r, i) => JSON.stringify({ id: i, task: r.task, input: r.source })).join('\n')}\n`,
    );
    const out = path.join(fx.dir, 'pred.jsonl');
    const r = await cli('predict', 'ev.s2', ...common(), '--input', file, '--out', out, '--batch-size', '5');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /predict: 16 rows of 2 task\(s\)/);
    assert.match(r.stderr, /predict: 16\/16 rows, [\d.]+ ex\/s/);
    const preds = fs
      .readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: number; task: string; output: string });
    assert.deepEqual(
      preds.map((p) => [p.id, p.task]),
      rows.map((row, i) => [i, row.task]),
    );

    // Per-task evaluation of the same version, in this process.
    await selectBackend({ requested: testBackend(), log: () => {} });
    const tok = await loadTokenizer(job.backbone.tokenizer);
    const { model } = loadT5Model(job.backbone.checkpoint);
    const bank = fx.bank();
    const v = await openServedVersion(bank, 'ev.s2', job, model, tok);
    try {
      const encoder = new ExampleEncoder(tok, {
        maxSourceLength: job.maxSourceLength,
        maxTargetLength: job.maxTargetLength,
      });
      for (const task of tasks) {
        const e = evaluateTask(
          model,
          v.method,
          encoder,
          { name: task.name, spec: task.spec, examples: task.validation.slice(0, 8) },
          {
            batchSize: 8,
            maxExamples: 8,
            maxNewTokens: job.maxTargetLength,
            mode: stage.train.evalMode,
            split: 'validation',
          },
        );
        const mine = preds.filter((p) => p.task === task.name).map((p) => p.output);
        assert.deepEqual(mine, e.predictions, task.name);
        const acc = (100 * mine.filter((p, i) => p === task.validation[i]!.target).length) / mine.length;
        assert.equal(acc, v.manifest.metrics[task.name], `${task.name} accuracy from predict`);
      }
      // Rank mode too: mixed batches scored against the union of their tasks' labels pick what per-task
      // label scoring picks.
      const ranked = await openServedVersion(bank, 'ev.s2', job, model, tok, { mode: 'rank', batchSize: 5 });
      try {
        const mixed = ranked.engine.predict(rows.map((r) => ({ task: r.task, source: r.source })));
        for (const task of tasks) {
          const e = evaluateTask(
            model,
            ranked.method,
            encoder,
            { name: task.name, spec: task.spec, examples: task.validation.slice(0, 8) },
            {
              batchSize: 8,
              maxExamples: 8,
              maxNewTokens: job.maxTargetLength,
              mode: 'rank',
              split: 'validation',
            },
          );
          assert.deepEqual(
            mixed.filter((_, i) => rows[i]!.task === task.name),
            e.predictions,
            `${task.name} (rank)`,
          );
        }
      } finally {
        ranked.dispose();
      }
      // No tensor outlives a pass (generate and rank modes, mixed batches).
      const inputs = rows.map((r) => ({ task: r.task, source: r.source }));
      v.engine.predict(inputs);
      const before = tf.memory().numTensors;
      v.engine.predict(inputs);
      v.engine.predictBatch(inputs.slice(0, 3));
      assert.equal(tf.memory().numTensors, before);
    } finally {
      v.dispose();
      model.dispose();
    }
  });

  test('the task’s own field layout is formatted as in training; a label comes back as target', (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const row = parsePredictRow({ task: 'demo-sentiment', review: 'the soup was great .', label: 1 }, 'x:1');
    const plain = parsePredictRow(
      { task: 'demo-sentiment', input: { review: 'the soup was great .' } },
      'x:2',
    );
    assert.equal(row.source, plain.source);
    assert.match(row.source, /^sentiment .*the soup was great \./);
    assert.ok(row.target !== undefined && plain.target === undefined);
  });

  test('a malformed line or an unserved task stops predict naming FILE:LINE', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const bad = path.join(fx.dir, 'bad.jsonl');
    fs.writeFileSync(bad, '{"task":"demo-entail","input":"a"}\n\n{"task": oops}\n');
    let r = await cli('predict', 'ev.s2', ...common(), '--input', bad);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: not valid JSON`));
    fs.writeFileSync(bad, '{"task":"demo-entail","input":"a"}\n{"task":"demo-topic","input":"b"}\n');
    r = await cli('predict', 'ev.s2', ...common(), '--input', bad);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /bad\.jsonl:2: task 'demo-topic' is not served by this version; it serves demo-entail, demo-dining/,
    );
    fs.writeFileSync(bad, '{"input":"b"}\n');
    r = await cli('predict', 'ev.s2', ...common(), '--input', bad);
    assert.match(r.stderr, /bad\.jsonl:1: field "task" must be a non-empty string/);
  });

  test('a version made with another method config than the given job is refused', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const other = fx.writeJob('other.json', (j) => {
      j.stages[1].method.attentionDim = 8;
      return j;
    });
    const r = await cli('eval', 'ev.s2', '--bank', fx.bankDir, '--config', other, '--backend', testBackend());
    assert.equal(r.code, 1);
    assert.match(r.stderr, /was trained with another method config than stage 's2'/);
  });
});
