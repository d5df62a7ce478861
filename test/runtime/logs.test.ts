/**
 * Structured logs of the runtime (src/telemetry/logger.ts) with real processes: a coordinator and two workers
 * with --log-format json (and PROMPTMESH_LOG_FORMAT) run a job in which one worker's step fails once
 * (PROMPTMESH_FAILPOINT=fail-at-step). Every line they write is a JSON record with time, level, msg, role and job;
 * records about generations and steps carry those fields; the failure is a level=error record of its own. The
 * failed step also exercises the worker's re-listen after a generation change: no bind error may appear. A flood
 * of bogus joins and garbage writes a few warn records and is counted in full by the metrics.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connect } from 'nats';
import { dropTensorFlowBanner } from '../../src/cli/commands/up.js';
import { PROTOCOL_VERSION, subjects } from '../../src/control/protocol.js';
import { natsSkipReason } from '../helpers/nats.js';
import {
  type CliProcess,
  expectExit,
  spawnCli,
  startCoordinator,
  startWorker,
  TEST_TOKEN,
} from '../helpers/runtime-fixture.js';
import { runtimeSuite } from '../helpers/runtime-suite.js';
import { SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';
import { fetchText, poll } from '../telemetry/local-job.js';

// biome-ignore lint/suspicious/noExplicitAny: parsed log records are checked field by field
type LogRecord = Record<string, any>;

/** Every line of a process's output as a JSON record; fails on the first line that is not one. */
function records(p: CliProcess): LogRecord[] {
  const lines = dropTensorFlowBanner(p.output())
    .split('\n')
    .filter((l) => l.trim() !== '');
  return lines.map((l) => {
    try {
      return JSON.parse(l) as LogRecord;
    } catch {
      return assert.fail(`${p.name} wrote a line that is not JSON: ${l}`);
    }
  });
}

describe('runtime: JSON logs', { skip: natsSkipReason() }, () => {
  const suite = runtimeSuite({ jobId: 'logs', steps: [5, 0] });

  test('a job with a failed step: JSON lines with role, job, generation, step and an error record', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const a = { natsUrl: suite.nats.url, jobFile: suite.fx.jobFile, bankDir: suite.fx.bankDir };
    const coord = startCoordinator({
      ...a,
      workers: 2,
      // A short heartbeat timeout: the re-formation after the failed step comes within the transport's 2 s
      // close grace, when a worker that re-listened too early found its port still taken.
      coordinatorArgs: ['--log-format', 'json', '--heartbeat-timeout-ms', '1000', '--checkpoint-every', '2'],
    });
    suite.procs.push(coord);
    const json = { PROMPTMESH_LOG_FORMAT: 'json' };
    const w0 = startWorker({ ...a, id: 'w0', env: { ...json, PROMPTMESH_FAILPOINT: 'fail-at-step:3' } });
    const w1 = startWorker({ ...a, id: 'w1', env: { ...json, PROMPTMESH_LOG_LEVEL: 'debug' } });
    suite.procs.push(w0, w1);
    assert.equal(await expectExit(coord, 180_000), 0, coord.output());
    assert.equal(await expectExit(w0), 0, w0.output());
    assert.equal(await expectExit(w1), 0, w1.output());

    const byProc = new Map([coord, w0, w1].map((p) => [p.name, records(p)]));
    for (const [name, recs] of byProc) {
      assert.ok(recs.length > 3, `${name} logged ${recs.length} records`);
      for (const r of recs) {
        assert.equal(typeof r.time, 'number', `${name}: ${JSON.stringify(r)}`);
        assert.ok(['debug', 'info', 'warn', 'error'].includes(r.level), `${name}: ${JSON.stringify(r)}`);
        assert.equal(typeof r.msg, 'string');
        assert.equal(r.role, name === 'coordinator' ? 'coordinator' : 'worker');
        assert.equal(r.job, 'logs');
        if (name !== 'coordinator') assert.equal(r.worker, name);
      }
      // Nothing failed to bind: the failed step's close and the next generation's listen did not overlap.
      for (const r of recs) assert.doesNotMatch(r.msg, /cannot listen|EADDRINUSE/, `${name}: ${r.msg}`);
    }
    const coordRecs = byProc.get('coordinator')!;
    const generations = coordRecs.filter((r) => /^generation \d+ \(/.test(r.msg));
    assert.ok(generations.length >= 2, 'the failed step re-formed the generation');
    for (const r of generations) {
      assert.equal(r.generation, Number(/^generation (\d+)/.exec(r.msg)![1]), JSON.stringify(r));
      assert.equal(typeof r.step, 'number');
      assert.equal(r.stage, 0);
    }
    const progress = coordRecs.filter((r) => r.progress === true);
    assert.ok(progress.length >= 1, 'step progress became info records');
    for (const r of progress) {
      assert.equal(r.level, 'info');
      assert.ok(r.generation >= 1 && typeof r.step === 'number', JSON.stringify(r));
    }
    assert.ok(
      coordRecs.some((r) => r.level === 'warn' && /worker w0 failed at step 3: FailpointError/.test(r.msg)),
      'the coordinator logs the failed step as a warning',
    );
    assert.ok(coordRecs.some((r) => r.level === 'info' && /complete; bank head/.test(r.msg)));

    const w0Recs = byProc.get('w0')!;
    const failure = w0Recs.filter((r) => r.level === 'error');
    assert.equal(failure.length, 1, JSON.stringify(failure));
    assert.match(failure[0]!.msg, /^FailpointError: failpoint: step 3 fails/);
    assert.ok(failure[0]!.generation >= 1, JSON.stringify(failure[0]));
    assert.equal(failure[0]!.stage, 0);
    for (const [name, recs] of byProc) {
      const joined = recs.filter((r) => /^generation \d+: rank \d of 2/.test(r.msg));
      if (name === 'coordinator') continue;
      assert.ok(joined.length >= 2, `${name} took part in both generations`);
      for (const r of joined) {
        assert.equal(r.generation, Number(/^generation (\d+)/.exec(r.msg)![1]));
        assert.equal(typeof r.step, 'number');
      }
    }
    // --log-level by the environment: w1 asked for debug (a record per step), w0 logs from info up.
    const debug = byProc.get('w1')!.filter((r) => r.level === 'debug' && /^step \d+ done/.test(r.msg));
    assert.ok(debug.length >= 5, `w1 wrote ${debug.length} step records at debug`);
    for (const r of debug) assert.equal(r.step, Number(/^step (\d+)/.exec(r.msg)![1]), JSON.stringify(r));
    assert.ok(!w0Recs.some((r) => r.level === 'debug'));
    // w1's step broke with w0's (its collective closed mid all-reduce): that too is an error record.
    for (const r of byProc.get('w1')!.filter((x) => x.level === 'error'))
      assert.match(r.msg, /^(PeerFailedError|Collective)/, r.msg);
  });

  test('a flood of bogus joins and garbage: a few warn records, every one counted in the metrics', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const coord = spawnCli(
      'coordinator',
      [
        'coordinator',
        ...[
          '--nats',
          suite.nats.url,
          '--config',
          suite.fx.jobFile,
          '--bank',
          suite.fx.bankDir,
          '--token',
          TEST_TOKEN,
        ],
        ...['--job-id', 'flood', '--metrics-port', '0', '--log-format', 'json'],
      ],
      {},
    );
    suite.procs.push(coord);
    const url = (await coord.waitFor(/metrics on (http:\/\/[^\s"]+\/metrics)/))[1]!;
    const nc = await connect({ servers: suite.nats.url });
    try {
      const subj = subjects('flood');
      const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
      const bogus = enc({
        type: 'join',
        jobId: 'flood',
        token: 'not-the-token-0123456789',
        protocol: PROTOCOL_VERSION,
        workerId: 'intruder',
        address: '127.0.0.1:1',
      });
      // The first answer says the coordinator listens; then the flood.
      await poll('the coordinator to answer joins', 30_000, () =>
        nc.request(subj.join, bogus, { timeout: 1000 }).then(
          () => true,
          () => undefined,
        ),
      );
      const JOINS = 200;
      const GARBAGE = 100;
      for (let i = 0; i < JOINS; i += 50) {
        await Promise.all(
          Array.from({ length: Math.min(50, JOINS - i) }, () =>
            nc.request(subj.join, bogus, { timeout: 5000 }),
          ),
        );
      }
      for (let i = 0; i < GARBAGE; i++) nc.publish(subj.heartbeat, enc('{not json'));
      await nc.flush();
      const metric = (text: string, series: string) =>
        Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
      const counted = await poll('every refusal and dropped message counted', 30_000, async () => {
        const text = (await fetchText(url)).text;
        const dropped = metric(text, 'promptmesh_control_messages_dropped_total{subject="heartbeat"}');
        return dropped === GARBAGE ? text : undefined;
      });
      const refused = metric(counted, 'promptmesh_membership_changes_total{reason="refused"}');
      assert.ok(refused >= JOINS + 1, `refused ${refused}`);
      assert.equal(metric(counted, 'promptmesh_control_messages_dropped_total{subject="join"}'), refused);
      // Unauthenticated joins and garbage share one bounded refusal log: a few warn records in all.
      const recs = records(coord);
      const refusals = recs.filter((r) => /refused (a worker|a message on promptmesh\.flood\.)/.test(r.msg));
      assert.ok(refusals.length >= 1 && refusals.length <= 20, `${refusals.length} refusal records`);
      for (const r of refusals) assert.equal(r.level, 'warn');
    } finally {
      await nc.close();
      coord.kill('SIGINT');
      await expectExit(coord);
    }
  });

  test('a process that fails ends with a level=error JSON record naming why', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const p = spawnCli(
      'coordinator',
      [
        'coordinator',
        '--nats',
        suite.nats.url,
        '--config',
        suite.fx.jobFile,
        '--bank',
        suite.fx.bankDir,
        '--token',
        TEST_TOKEN,
        '--from',
        'no-such-version',
      ],
      { PROMPTMESH_LOG_FORMAT: 'json' },
    );
    suite.procs.push(p);
    assert.equal(await expectExit(p), 1, p.output());
    const recs = records(p);
    const last = recs.at(-1)!;
    assert.equal(last.level, 'error');
    assert.equal(last.role, 'coordinator');
    assert.match(last.msg, /no-such-version/);
  });
});
