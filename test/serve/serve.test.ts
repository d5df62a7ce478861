/**
 * `promptmesh serve` as a real child process on loopback, serving a tag of a folder bank with the tiny fixture
 * backbone: health and readiness, predictions equal to `promptmesh predict`'s, every kind of bad request answered
 * 4xx with a reason (and the server still up), concurrent requests batched into shared forward passes, a stated
 * request rate held with a p99 bound, and the server moving to a new version when its tag moves.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { selectBackend } from '../../src/backend/index.js';
import type { Manifest } from '../../src/bank/index.js';
import { runCli } from '../../src/cli/main.js';
import { loadT5Model } from '../../src/model/load-t5.js';
import { createStageMethod, methodTensors } from '../../src/train/run-job.js';
import { loadTrainTasks } from '../../src/train/task-source.js';
import { testBackend } from '../helpers/backend.js';
import {
  type CliProcess,
  killAll,
  makeRuntimeFixture,
  type RuntimeFixture,
  spawnCli,
} from '../helpers/runtime-fixture.js';
import { SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

/** The load the server must hold (open loop: requests are sent on schedule whatever the answers). */
const RATE_PER_S = 40;
const LOAD_SECONDS = 3;
// Generous: a pass of the tiny model takes ~5 ms on an idle core but 100-200 ms on a shared, overloaded CI machine.
const P99_BOUND_MS = 2000;

async function post(url: string, body: string, type = 'application/json') {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': type }, body });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

describe('promptmesh serve', () => {
  let fx: RuntimeFixture | undefined;
  let server: CliProcess | undefined;
  let base = '';
  let v1: Manifest;
  let rows: { task: string; input: string }[] = [];
  let commit: (scale: number, parent: string | null) => Promise<Manifest>;
  before(async () => {
    fx = await makeRuntimeFixture({ jobId: 'sv', steps: [2, 0] });
    if (!fx) return;
    // Two versions of stage s1 (freshly initialised prompts, then the same scaled), committed as training would.
    const job = fx.job();
    const stage = job.stages[0]!;
    await selectBackend({ requested: testBackend(), log: () => {} });
    const { model } = loadT5Model(job.backbone.checkpoint);
    const method = createStageMethod(stage, model, new Map(), job.maxSourceLength);
    const params = new Map(
      method.params.map((p) => [p.name, (p.variable.dataSync() as Float32Array).slice()]),
    );
    const bank = fx.bank();
    // Both versions' tensors are taken now, while the method is alive.
    const scaled = new Map(
      [1, 3].map((scale) => [
        scale,
        methodTensors(method, new Map([...params].map(([k, d]) => [k, d.map((x) => x * scale)]))),
      ]),
    );
    commit = (scale, parent) =>
      bank.commit({
        job: 'sv',
        parent,
        step: 2,
        method: stage.method.name,
        config: stage.method,
        tensors: scaled.get(scale)!,
        metrics: {},
        extra: { stageName: stage.name, final: true },
      });
    v1 = await commit(1, null);
    await bank.tag(v1.id, 'live');
    method.dispose();
    model.dispose();
    for (const t of loadTrainTasks(job.data, stage.tasks))
      for (const ex of t.validation.slice(0, 6)) rows.push({ task: t.name, input: ex.source });
    rows = rows.filter((_, i) => i % 2 === 0).concat(rows.filter((_, i) => i % 2 === 1));
    server = spawnCli('serve', [
      'serve',
      ...['--bank', fx.bankDir, 'live', '--config', fx.jobFile, '--backend', testBackend()],
      ...['--port', '0', '--poll-ms', '200', '--max-batch', '16', '--max-wait-ms', '5'],
      ...['--max-input-chars', '2000', '--max-body-bytes', '65536'],
    ]);
    const m = await server.waitFor(/listening on (http:\/\/\S+)/, 60_000);
    base = m[1]!;
  });
  after(async () => {
    if (server) await killAll([server]);
    fx?.cleanup();
  });

  test('health, readiness and the served version', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    const v = (await (await fetch(`${base}/v1/version`)).json()) as Record<string, unknown>;
    assert.equal(v.version, v1.id);
    assert.equal(v.stage, 's1');
    assert.deepEqual(v.tasks, ['demo-sentiment', 'demo-topic']);
  });

  test('predictions (single and batch form, tasks mixed) equal promptmesh predict’s', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const file = path.join(fx.dir, 'rows.jsonl');
    fs.writeFileSync(file, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
    const stdout = new PassThrough();
    let out = '';
    stdout.on('data', (d) => {
      out += d;
    });
    const code = await runCli(
      [
        'predict',
        '--bank',
        fx.bankDir,
        'live',
        '--config',
        fx.jobFile,
        '--backend',
        testBackend(),
        '--input',
        file,
      ],
      { stdout, stderr: new PassThrough() },
    );
    assert.equal(code, 0);
    const expected = out
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { output: string }).output);
    const batch = await post(
      `${base}/v1/predict`,
      JSON.stringify({ instances: rows.map((r, i) => ({ ...r, id: i })) }),
    );
    assert.equal(batch.status, 200, JSON.stringify(batch.json));
    const preds = batch.json.predictions as { id: number; task: string; output: string }[];
    assert.deepEqual(
      preds.map((p) => p.output),
      expected,
    );
    assert.deepEqual(
      preds.map((p) => p.id),
      rows.map((_, i) => i),
    );
    const singles = await Promise.all(rows.map((r) => post(`${base}/v1/predict`, JSON.stringify(r))));
    assert.deepEqual(
      singles.map((s) => s.json.output),
      expected,
    );
    assert.equal(singles[0]!.json.version, v1.id);
  });

  test('bad requests get a 4xx with a reason; the server stays up', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const cases: [
      string,
      () => Promise<{ status: number; json: Record<string, unknown> }>,
      number,
      RegExp,
    ][] = [
      ['malformed JSON', () => post(`${base}/v1/predict`, '{"task": '), 400, /not valid JSON/],
      ['no task', () => post(`${base}/v1/predict`, '{"input": "x"}'), 400, /field "task"/],
      [
        'unknown task',
        () => post(`${base}/v1/predict`, '{"task": "rte", "input": "x"}'),
        422,
        /task 'rte' is not served by this version; it serves demo-sentiment, demo-topic/,
      ],
      [
        'oversized input',
        () => post(`${base}/v1/predict`, JSON.stringify({ task: 'demo-topic', input: 'a '.repeat(1500) })),
        413,
        /input of 3000 characters; at most 2000/,
      ],
      [
        'oversized body',
        () => post(`${base}/v1/predict`, JSON.stringify({ task: 'demo-topic', input: 'x'.repeat(100_000) })),
        413,
        /at most 65536/,
      ],
      [
        'too many instances',
        () =>
          post(
            `${base}/v1/predict`,
            JSON.stringify({ instances: Array.from({ length: 17 }, () => rows[0]) }),
          ),
        413,
        /17 instances in one request; at most 16/,
      ],
      ['empty instances', () => post(`${base}/v1/predict`, '{"instances": []}'), 400, /non-empty list/],
      ['wrong content', () => post(`${base}/v1/predict`, 'task=x', 'text/plain'), 415, /application\/json/],
      [
        'wrong method',
        async () => {
          const r = await fetch(`${base}/v1/predict`);
          return { status: r.status, json: (await r.json()) as Record<string, unknown> };
        },
        405,
        /use POST/,
      ],
      [
        'unknown path',
        async () => {
          const r = await fetch(`${base}/v2/nothing`);
          return { status: r.status, json: (await r.json()) as Record<string, unknown> };
        },
        404,
        /no route/,
      ],
    ];
    for (const [name, send, status, reason] of cases) {
      const r = await send();
      assert.equal(r.status, status, `${name}: ${JSON.stringify(r.json)}`);
      const err = r.json.error as { code: number; reason: string };
      assert.equal(err.code, status, name);
      assert.match(err.reason, reason, name);
    }
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await post(`${base}/v1/predict`, JSON.stringify(rows[0]))).status, 200);
  });

  test(`holds ${RATE_PER_S} requests/s for ${LOAD_SECONDS} s with p99 under ${P99_BOUND_MS} ms, batching concurrent ones`, async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const n = RATE_PER_S * LOAD_SECONDS;
    const latencies: number[] = [];
    const statuses: number[] = [];
    const t0 = performance.now();
    const sends: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const due = t0 + (i * 1000) / RATE_PER_S;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const start = performance.now();
      sends.push(
        post(`${base}/v1/predict`, JSON.stringify(rows[i % rows.length])).then((r) => {
          latencies.push(performance.now() - start);
          statuses.push(r.status);
        }),
      );
    }
    // And a burst: 16 at once share passes.
    sends.push(
      ...rows.slice(0, 12).map((r) =>
        post(`${base}/v1/predict`, JSON.stringify(r)).then((x) => {
          statuses.push(x.status);
        }),
      ),
    );
    await Promise.all(sends);
    const seconds = (performance.now() - t0) / 1000;
    assert.ok(
      statuses.every((s) => s === 200),
      `statuses: ${[...new Set(statuses)]}`,
    );
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.ceil(0.99 * latencies.length) - 1]!;
    t.diagnostic(
      `${n} requests in ${seconds.toFixed(2)} s, p50 ${latencies[Math.floor(n / 2)]!.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`,
    );
    assert.ok(seconds < LOAD_SECONDS + 2, `the load took ${seconds.toFixed(2)} s: the server fell behind`);
    assert.ok(p99 < P99_BOUND_MS, `p99 ${p99.toFixed(1)} ms`);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const value = (re: RegExp) => Number(metrics.match(re)?.[1] ?? Number.NaN);
    const passes = value(/^promptmesh_serve_batch_size_count (\S+)$/m);
    const rowsRun = value(/^promptmesh_serve_batch_size_sum (\S+)$/m);
    const single = value(/^promptmesh_serve_batch_size_bucket\{le="1"\} (\S+)$/m);
    assert.ok(
      rowsRun > passes && single < passes,
      `no pass held more than one row: ${passes} passes, ${rowsRun} rows`,
    );
    assert.ok(
      value(/^promptmesh_serve_request_duration_seconds_count\{route="\/v1\/predict",code="200"\} (\S+)$/m) >=
        n,
    );
    assert.match(metrics, /^promptmesh_serve_examples_total\{task="demo-topic"\} \d+/m);
    assert.ok(value(/^promptmesh_serve_examples_per_second (\S+)$/m) > 0);
    assert.match(
      metrics,
      new RegExp(
        `^promptmesh_serve_version_info\\{version="${v1.id}",job="sv",stage="s1",method="prompt-tuning"\\} 1`,
        'm',
      ),
    );
  });

  test('moves to the new version when its tag moves', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const v2 = await commit(3, v1.id);
    await fx.bank().tag(v2.id, 'live', { force: true });
    const deadline = performance.now() + 10_000;
    let served = '';
    while (performance.now() < deadline) {
      served = ((await (await fetch(`${base}/v1/version`)).json()) as { version: string }).version;
      if (served === v2.id) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(served, v2.id);
    const r = await post(`${base}/v1/predict`, JSON.stringify(rows[0]));
    assert.equal(r.json.version, v2.id);
    assert.match(server!.output(), new RegExp(`'live' moved: now serving ${v2.id.slice(0, 12)}`));
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^promptmesh_serve_version_switches_total 1$/m);
  });
});
