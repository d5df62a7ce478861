/**
 * Run history kept with the job in the bank (issue 15 item 6) and drawn by `promptmesh plot` (item 7): versions
 * carry `history.jsonl` attachments that are verified, kept by gc and exported; `bank history` walks the parents;
 * `train --out` writes the same records, one per step (with the learning rate the schedule gave) and one per
 * evaluation; `plot` draws them.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { selectBackend } from '../../src/backend/index.js';
import { DirectoryStore, type Manifest, PromptBank } from '../../src/bank/index.js';
import { parseJobConfig } from '../../src/config/job-config.js';
import { makeTinyT5 } from '../../src/model/checkpoint/index.js';
import { T5Model } from '../../src/model/t5/index.js';
import { loadTokenizer, type Tokenizer } from '../../src/model/tokenizer/index.js';
import {
  encodeHistory,
  HISTORY_ATTACHMENT,
  HISTORY_MEDIA_TYPE,
  HistoryBuffer,
  type HistoryRecord,
  historyToCsv,
  parseHistory,
  SCORE_SUMMARY_MARK,
  stageScoreSummary,
} from '../../src/train/history.js';
import { runJob } from '../../src/train/run-job.js';
import { linearWarmupDecay } from '../../src/train/schedule.js';
import { loadTrainedState } from '../../src/train/trained-state.js';
import { testBackend } from '../helpers/backend.js';
import { cli } from '../helpers/cli.js';
import { ensureSpmModel, SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';
import { tensor } from './bank-suite.js';

function steps(stage: string, from: number, to: number): HistoryRecord[] {
  const out: HistoryRecord[] = [];
  for (let s = from; s <= to; s++) {
    out.push({
      kind: 'step',
      stage,
      step: s,
      loss: 5 / s,
      tasks: { a: 6 / s, b: 4 / s },
      lr: { prompt: 0.3 * (1 - s / 10), attention: 0.05 },
      gradNorm: 1 / s,
      examples: 8,
      examplesPerSecond: 100 + s,
      time: new Date(Date.UTC(2026, 11, 1, 0, 0, s)).toISOString(),
    });
  }
  out.push({
    kind: 'eval',
    stage,
    step: to,
    split: 'validation',
    scores: { a: 50 + to, b: 40 + to },
    average: 45 + to,
    invalid: { a: 0, b: 1 },
    time: new Date(Date.UTC(2026, 11, 1, 0, 1, to)).toISOString(),
  });
  return out;
}

const attach = (records: HistoryRecord[]) => ({
  [HISTORY_ATTACHMENT]: { data: encodeHistory(records), mediaType: HISTORY_MEDIA_TYPE },
});

describe('stageScoreSummary: untrained -> trained per task', () => {
  const evalAt = (stage: string, step: number, scores: Record<string, number | null>): HistoryRecord => ({
    kind: 'eval',
    stage,
    step,
    split: 'validation',
    scores: scores as Record<string, number>,
    average: mean(Object.values(scores).filter((v): v is number => v !== null)),
    invalid: {},
    time: new Date(Date.UTC(2026, 11, 1, 0, 0, step)).toISOString(),
  });
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
  const stages = [
    { name: 'sources', train: { evalMode: 'generate' as const } },
    { name: 'targets', train: { evalMode: 'rank' as const } },
    { name: 'unscored', train: { evalMode: 'rank' as const } },
  ];

  test('one line per stage with a step-0 and a later evaluation, in stage order, the best evaluation as trained', () => {
    const records: HistoryRecord[] = [
      ...steps('targets', 1, 2).slice(0, 2),
      evalAt('targets', 0, { 'demo-entail': 50, 'demo-count': 8 }),
      evalAt('targets', 30, { 'demo-entail': 55, 'demo-count': 9 }),
      evalAt('targets', 60, { 'demo-entail': 63, 'demo-count': 15.04 }),
      evalAt('sources', 0, { a: 10, b: 20 }),
      // A held-out task scored only after training, and a non-finite score kept as null: shown as '-'.
      evalAt('sources', 4, { a: 12.25, b: null, c: 7 }),
      // A stage evaluated only at its end (no evalAtStart) has nothing to compare.
      evalAt('unscored', 5, { a: 1 }),
    ];
    assert.deepEqual(stageScoreSummary(records, stages), [
      `stage 'sources' (validation, generation): a 10.0 -> 12.3, b 20.0 -> -, c - -> 7.0 ${SCORE_SUMMARY_MARK}4)`,
      `stage 'targets' (validation, label scoring): demo-entail 50.0 -> 63.0, demo-count 8.0 -> 15.0 (untrained -> trained at step 60, the best of 2 evaluations)`,
    ]);
  });

  test('trained is the evaluation the stage keeps: the best average, the earliest on ties', () => {
    const records: HistoryRecord[] = [
      evalAt('targets', 0, { a: 50 }),
      evalAt('targets', 10, { a: 60 }),
      evalAt('targets', 20, { a: 70 }),
      evalAt('targets', 30, { a: 70 }),
      evalAt('targets', 40, { a: 65 }),
      // A version rewritten after a failure records its evaluation again: counted once.
      evalAt('targets', 40, { a: 65 }),
    ];
    assert.deepEqual(stageScoreSummary(records, stages), [
      `stage 'targets' (validation, label scoring): a 50.0 -> 70.0 ${SCORE_SUMMARY_MARK}20, the best of 4 evaluations)`,
    ]);
  });

  test('no line without both evaluations, nor for a stage the job does not name', () => {
    assert.deepEqual(stageScoreSummary([evalAt('targets', 0, { a: 1 })], stages), []);
    assert.deepEqual(stageScoreSummary(steps('targets', 1, 3), stages), []);
    assert.deepEqual(
      stageScoreSummary([evalAt('other', 0, { a: 1 }), evalAt('other', 3, { a: 2 })], stages),
      [],
    );
  });
});

describe('run history in the bank', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-hist-'));
  const root = path.join(tmp, 'bank');
  const segments = [steps('sources', 1, 3), steps('sources', 4, 5), steps('targets', 1, 2)];
  const versions: Manifest[] = [];
  before(async () => {
    const bank = new PromptBank(new DirectoryStore(root));
    let parent: string | null = null;
    for (const [i, seg] of segments.entries()) {
      const v: Manifest = await bank.commit({
        job: 'hist',
        parent,
        step: i + 1,
        method: 'prompt-tuning',
        tensors: { 'prompt.a': tensor([2, 4], i) },
        attachments: attach(seg),
      });
      versions.push(v);
      parent = v.id;
    }
    // A job without history (an import, or a version from before history existed) is not an error.
    await bank.commit({
      job: 'bare',
      parent: null,
      step: 1,
      method: 'prompt-tuning',
      tensors: { x: tensor([1, 4], 9) },
    });
    await bank.close();
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('bank history JOB walks the parents and prints every record in order', async () => {
    const r = await cli('bank', 'history', '--bank', root, 'hist', '--format', 'json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), segments.flat());
    // From the middle version: only its ancestors' records.
    const mid = await cli(
      'bank',
      'history',
      '--bank',
      root,
      versions[1]!.id.slice(0, 10),
      '--format',
      'jsonl',
    );
    assert.deepEqual(
      mid.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
      [...segments[0]!, ...segments[1]!],
    );
    const evals = await cli('bank', 'history', '--bank', root, 'hist@head', '--kind', 'eval');
    assert.equal(evals.stdout.trim().split('\n').length, 3, evals.stdout);
    assert.match(evals.stdout, /targets +2 {2}eval \(validation\) average 47\.00 \| a 52\.0, b 42\.0/);
    const text = await cli('bank', 'history', '--bank', root, 'hist', '--stage', 'targets', '--kind', 'step');
    assert.match(
      text.stdout,
      /^targets +1 {2}loss 5\.0000 \| a 6\.0000 b 4\.0000 \| lr prompt 2\.70e-1 attention 5\.00e-2/m,
    );
    const bare = await cli('bank', 'history', '--bank', root, 'bare');
    assert.equal(bare.code, 0);
    assert.match(bare.stdout, /no history/);
  });

  test('CSV has a column per task loss, lr group and task score', async () => {
    const r = await cli('bank', 'history', '--bank', root, 'hist', '--format', 'csv');
    const rows = r.stdout.trim().split('\n');
    assert.equal(
      rows[0],
      'kind,stage,step,time,loss,grad_norm,examples_per_second,loss/a,loss/b,lr/attention,lr/prompt,score/a,score/b,average',
    );
    assert.equal(rows.length, 1 + segments.flat().length);
    assert.equal(rows[1], `step,sources,1,2026-12-01T00:00:01.000Z,5,1,101,6,4,0.05,${0.3 * 0.9},,,`);
    assert.equal(rows[4], 'eval,sources,3,2026-12-01T00:01:03.000Z,,,,,,,,53,43,48');
    assert.equal(historyToCsv([]), 'kind,stage,step,time,loss,grad_norm,examples_per_second,average\n');
  });

  test('attachments are listed by show, exported, kept by gc and verified on read', async () => {
    const show = await cli('bank', 'show', '--bank', root, 'hist@head');
    assert.match(show.stdout, /attachments:\n {2}history\.jsonl +application\/jsonl/);
    const out = path.join(tmp, 'export');
    const ex = await cli('bank', 'export', '--bank', root, 'hist@head', '--out', out);
    assert.equal(ex.code, 0, ex.stderr);
    assert.deepEqual(
      parseHistory(fs.readFileSync(path.join(out, HISTORY_ATTACHMENT), 'utf8'), 'x'),
      segments[2],
    );
    const gc = await cli('bank', 'gc', '--bank', root, '--grace', '0', '--json');
    assert.equal(gc.code, 0, gc.stderr);
    assert.equal(JSON.parse(gc.stdout).blobsDeleted, 0, 'history blobs are referenced');
    const again = await cli('bank', 'history', '--bank', root, 'hist', '--format', 'json');
    assert.deepEqual(JSON.parse(again.stdout), segments.flat());
    // Damage one attachment blob: reading it names the version and the attachment, nothing else is affected.
    const digest = versions[0]!.attachments![HISTORY_ATTACHMENT]!.digest.slice('sha256:'.length);
    const blob = fs
      .readdirSync(path.join(root, 'blobs'), { recursive: true })
      .map(String)
      .find((f) => f.endsWith(digest));
    assert.ok(blob, 'the attachment is a blob of the store');
    fs.appendFileSync(path.join(root, 'blobs', blob), 'x');
    const bad = await cli('bank', 'history', '--bank', root, 'hist', '--format', 'json');
    assert.notEqual(bad.code, 0);
    assert.match(
      bad.stderr,
      new RegExp(`corrupt blob for attachment 'history\\.jsonl' of version ${versions[0]!.id}`),
    );
    const tensorsStillLoad = await cli('bank', 'show', '--bank', root, 'hist@head', '--verify');
    assert.equal(tensorsStillLoad.code, 0, tensorsStillLoad.stderr);
  });

  test('a malformed history line names the file and the line; bad names and formats are refused', async () => {
    assert.throws(
      () =>
        parseHistory(
          '{"kind":"step","stage":"s","step":1,"loss":1,"tasks":{},"lr":{},"gradNorm":1,"examplesPerSecond":1}\nnot json\n',
          'h.jsonl',
        ),
      /h\.jsonl:2: not JSON/,
    );
    assert.throws(
      () => parseHistory('{"kind":"lap","stage":"s","step":1}', 'h.jsonl'),
      /h\.jsonl:1: unknown record kind 'lap'/,
    );
    const bank = new PromptBank(new DirectoryStore(root));
    await assert.rejects(
      bank.commit({
        job: 'hist2',
        parent: null,
        step: 1,
        method: 'm',
        tensors: { x: tensor([1, 2], 1) },
        attachments: { '../evil': { data: new Uint8Array(1), mediaType: 'x' } },
      }),
      /attachment name '\.\.\/evil' must be a plain file name/,
    );
    await bank.close();
    const r = await cli('bank', 'history', '--bank', root, 'hist', '--format', 'xml');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--format: 'xml' is not one of text, csv, json, jsonl/);
  });

  test('non-finite losses are kept as null, and the buffer keeps records until their commit succeeds', () => {
    const rec = { ...steps('s', 1, 1)[0]!, loss: Number.NaN } as HistoryRecord;
    const [back] = parseHistory(new TextDecoder().decode(encodeHistory([rec])), 'x');
    assert.equal((back as { loss: number | null }).loss, null);
    const buf = new HistoryBuffer();
    for (const r of steps('s', 1, 4)) buf.push(r);
    const first = buf.take();
    assert.equal(first.length, 5);
    buf.push(steps('s', 5, 5)[0]!);
    buf.committed(first.length); // the commit that carried `first` succeeded
    assert.deepEqual(buf.take(), [steps('s', 5, 5)[0]]);
    for (const r of steps('s', 6, 7)) buf.push(r);
    buf.rollBack('s', 5); // recovery: steps 6-7 will be redone
    assert.deepEqual(
      buf.take().map((r) => [r.kind, r.step]),
      [['step', 5]],
    );
  });
});

describe('train --out writes the history; plot draws it', () => {
  let tokenizer: Tokenizer | undefined;
  let model: T5Model;
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-hist-job-'));
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

  test('one record per step with the scheduled learning rates, one per evaluation, the same as the results', async (t) => {
    if (!tokenizer) return t.skip(SPM_MISSING_MESSAGE);
    const train = {
      steps: 6,
      batchSize: 4,
      microBatchSize: 4,
      warmupSteps: 2,
      evalEvery: 3,
      evalExamples: 4,
    };
    const job = parseJobConfig({
      backbone: '/unused',
      data: { suite: 'demo' },
      maxSourceLength: 16,
      maxTargetLength: 4,
      stages: [
        {
          name: 'src',
          method: { name: 'prompt-tuning', perTask: true, promptLength: 2 },
          tasks: ['demo-sentiment'],
          train: { ...train, steps: 1, warmupSteps: 0, evalEvery: 0 },
        },
        {
          name: 'only',
          method: {
            name: 'attempt',
            promptLength: 2,
            attentionDim: 4,
            sources: ['prompt.demo-sentiment'],
            multiTask: true,
          },
          tasks: ['demo-sentiment', 'demo-topic'],
          train: { ...train, lr: { prompt: 0.3, attention: 0.05 }, evalAtStart: true },
        },
      ],
    });
    const [, r] = await runJob(job, { model, tokenizer, out });
    const file = path.join(out, 'only', HISTORY_ATTACHMENT);
    const records = parseHistory(fs.readFileSync(file, 'utf8'), file);
    assert.deepEqual(records, r!.history);
    const stepRecs = records.filter((x) => x.kind === 'step');
    assert.deepEqual(
      stepRecs.map((x) => x.step),
      [1, 2, 3, 4, 5, 6],
    );
    for (const [i, s] of stepRecs.entries()) {
      const scale = linearWarmupDecay(i, 2, 6);
      assert.ok(Math.abs(s.lr.prompt! - 0.3 * scale) < 1e-12, `step ${s.step} prompt lr ${s.lr.prompt}`);
      assert.ok(Math.abs(s.lr.attention! - 0.05 * scale) < 1e-12, `step ${s.step} attention lr`);
      assert.ok(Number.isFinite(s.loss) && s.loss > 0);
      assert.ok(s.gradNorm > 0);
      assert.deepEqual(Object.keys(s.tasks).sort().length > 0, true);
    }
    const evalRecs = records.filter((x) => x.kind === 'eval');
    // evalAtStart: the untrained prompt is scored first, before step 1; the kept parameters are a trained step's.
    assert.deepEqual(
      evalRecs.map((e) => e.step),
      [0, 3, 6],
    );
    assert.equal(records[0]!.kind, 'eval');
    assert.deepEqual(evalRecs[0]!.scores, r!.initial!.scores);
    assert.equal(r!.initial!.step, 0);
    assert.deepEqual(evalRecs[2]!.scores, r!.final!.scores);
    assert.ok([3, 6].includes(r!.best!.step), `best at step ${r!.best!.step}`);
    // The first stage did not ask for it.
    assert.equal(
      parseHistory(fs.readFileSync(path.join(out, 'src', HISTORY_ATTACHMENT), 'utf8'), 'src').filter(
        (x) => x.kind === 'eval' && x.step === 0,
      ).length,
      0,
    );
    // The summary names the evaluation whose prompts the stage kept (the trainer's best).
    assert.match(
      stageScoreSummary(records, job.stages).join('\n'),
      new RegExp(
        `^stage 'only' \\(validation, generation\\): demo-sentiment \\d+\\.\\d -> \\d+\\.\\d, demo-topic \\d+\\.\\d -> \\d+\\.\\d \\(untrained -> trained at step ${r!.best!.step}, the best of 2 evaluations\\)$`,
      ),
    );

    // One trained-prompt format: the stage folder is a bank export; `bank import` commits it as is, with its
    // history and job, and refuses a folder whose files do not match their digests.
    const bankDir = path.join(out, 'bank');
    const imp = await cli(
      'bank',
      'import',
      '--bank',
      bankDir,
      path.join(out, 'only'),
      '--job',
      'imported',
      '--json',
    );
    assert.equal(imp.code, 0, imp.stderr);
    const version = JSON.parse(imp.stdout) as Manifest;
    const written = JSON.parse(fs.readFileSync(path.join(out, 'only', 'manifest.json'), 'utf8')) as Manifest;
    assert.deepEqual(version.tensors, written.tensors);
    assert.deepEqual(Object.keys(version.attachments ?? {}).sort(), ['history.jsonl', 'job.json']);
    assert.equal(version.extra?.stageName, 'only');
    const h = await cli('bank', 'history', '--bank', bankDir, 'imported', '--format', 'json');
    assert.deepEqual(JSON.parse(h.stdout), records);
    const reloaded = loadTrainedState(path.join(out, 'only'));
    assert.deepEqual([...reloaded.tensors.keys()].sort(), [...r!.tensors.keys()].sort());
    assert.ok(Object.values(reloaded.manifest.tensors).some((d) => d.trainable));
    fs.appendFileSync(path.join(out, 'only', HISTORY_ATTACHMENT), '\n');
    const tampered = await cli(
      'bank',
      'import',
      '--bank',
      bankDir,
      path.join(out, 'only'),
      '--job',
      'imported2',
    );
    assert.notEqual(tampered.code, 0);
    assert.match(tampered.stderr, /corrupt blob for attachment 'history\.jsonl'/);

    const svg = path.join(out, 'curves.svg');
    const p = await cli('plot', '--history', file, '--out', svg);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stderr, /wrote .*curves\.svg: 6 steps, 3 evaluations/);
    const text = fs.readFileSync(svg, 'utf8');
    assert.match(text, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    // One smoothed loss path and one raw path per task, one score line per task with a marker per evaluation.
    const tasks = Object.keys(evalRecs[0]!.scores);
    for (const t of tasks) assert.match(text, new RegExp(`<title>${t}</title>`));
    assert.equal((text.match(/<circle /g) ?? []).length, tasks.length * evalRecs.length);
    assert.equal((text.match(/<path /g) ?? []).length, 3 * tasks.length);
    const none = await cli('plot', '--history', file, '--out', svg, '--stage', 'nope');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no history records/);
    const usage = await cli('plot', '--out', svg);
    assert.equal(usage.code, 2);
  });
});
