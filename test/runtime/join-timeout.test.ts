/**
 * A worker that nobody admits (no coordinator for its job id: none started yet, or the job finished and its
 * coordinator exited) keeps asking, reminds the operator at a bounded rate (job id, NATS subject, what to check),
 * and with --join-timeout (or PROMPTMESH_JOIN_TIMEOUT) exits 4 with that message. A coordinator that starts late
 * still gets the worker. Real nats-server, real worker and coordinator processes.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { RUNTIME_ENV } from '../../src/config/runtime-env.js';
import { type NatsServerHandle, natsSkipReason, startNatsServer } from '../helpers/nats.js';
import {
  type CliProcess,
  expectExit,
  killAll,
  makeRuntimeFixture,
  type RuntimeFixture,
  spawnCli,
  startCoordinator,
  TEST_TOKEN,
} from '../helpers/runtime-fixture.js';
import { SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

const JOINING =
  /joining job 'lonely' on promptmesh\.lonely\.join \(NATS 127\.0\.0\.1:\d+; collective at ([^)]+)\)/;

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

describe('runtime: a worker nobody admits', { skip: natsSkipReason() }, () => {
  let fx: RuntimeFixture | undefined;
  let nats: NatsServerHandle;
  const procs: CliProcess[] = [];

  before(async () => {
    fx = await makeRuntimeFixture({ jobId: 'lonely', steps: [2, 0] });
    if (!fx) return;
    nats = await startNatsServer();
  });
  after(async () => {
    await killAll(procs);
    await nats?.stop();
    fx?.cleanup();
  });

  const worker = (id: string, extra: string[], env: NodeJS.ProcessEnv = {}): CliProcess => {
    const p = spawnCli(
      id,
      [
        'worker',
        '--nats',
        nats.url,
        '--config',
        fx!.jobFile,
        '--bank',
        fx!.bankDir,
        '--token',
        TEST_TOKEN,
        '--worker-id',
        id,
        '--backend',
        'wasm',
        '--metrics-port',
        'off',
        ...extra,
      ],
      env,
    );
    procs.push(p);
    return p;
  };

  test('--join-timeout 12: one reminder after ~10 s, then exit 4 naming the job, the subject and what to check', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const w = worker('w0', ['--join-timeout', '12']);
    await w.waitFor(JOINING);
    const waitingSince = performance.now();
    const code = await expectExit(w, 60_000);
    const seconds = (performance.now() - waitingSince) / 1000;
    t.diagnostic(`exited ${code} after waiting ${seconds.toFixed(1)} s`);
    const out = w.output();
    assert.equal(code, 4, out);
    assert.ok(seconds >= 11.5 && seconds < 20, `waited ${seconds.toFixed(1)} s; output:\n${out}`);
    assert.match(out, /giving up after 12 s \(--join-timeout\)/);
    // The reminder: when, on which subject and server, why, and what to check; once in 12 s (bounded rate).
    const reminders = [...out.matchAll(/still waiting to join job 'lonely' after (\d+) s: (.*)/g)];
    assert.equal(reminders.length, 1, out);
    assert.ok(Number(reminders[0]![1]) >= 10 && Number(reminders[0]![1]) < 12, reminders[0]![0]);
    assert.match(
      reminders[0]![2]!,
      /^no coordinator answered on promptmesh\.lonely\.join \(NATS 127\.0\.0\.1:\d+; last attempt: no coordinator is subscribed\)\. Is a coordinator running for job 'lonely' on this NATS server\? A finished job's coordinator has exited: to train again, start a new job \(coordinator and workers\) with --job-id ID\. Giving up in [12] s \(--join-timeout\)\.$/,
    );
    assert.match(
      out,
      /\[w0\] gave up joining job 'lonely' after 12 s \(--join-timeout 12\): no coordinator answered on promptmesh\.lonely\.join .*Is a coordinator running for job 'lonely'.*--job-id ID\.\n/,
    );
    assert.match(out, /\[w0\] stopped: join timeout after 12 s/);
  });

  test('PROMPTMESH_JOIN_TIMEOUT and PROMPTMESH_LISTEN come from the environment', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const port = await freePort();
    const w = worker('w1', [], {
      [RUNTIME_ENV.joinTimeout]: '2',
      [RUNTIME_ENV.listen]: `127.0.0.1:${port}`,
    });
    const joining = await w.waitFor(JOINING);
    const waitingSince = performance.now();
    assert.equal(joining[1], `127.0.0.1:${port}`, 'the collective listens where PROMPTMESH_LISTEN says');
    const code = await expectExit(w, 60_000);
    const seconds = (performance.now() - waitingSince) / 1000;
    assert.equal(code, 4, w.output());
    assert.ok(seconds >= 1.5 && seconds < 10, `waited ${seconds.toFixed(1)} s; output:\n${w.output()}`);
    assert.match(w.output(), /gave up joining job 'lonely' after 2 s \(--join-timeout 2\)/);
    assert.doesNotMatch(w.output(), /still waiting/, 'no reminder before 10 s');
  });

  test('a --join-timeout that is not a number of seconds is a usage error', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const w = worker('w2', ['--join-timeout=-3']);
    assert.equal(await expectExit(w, 30_000), 2, w.output());
    assert.match(w.output(), /--join-timeout expects seconds >= 0 \(0 = wait forever\), got '-3'/);
  });

  test('a coordinator that starts after the worker still gets it (the timeout stops once admitted)', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const w = worker('w3', ['--join-timeout', '60']);
    await w.waitFor(JOINING);
    const coord = startCoordinator({
      natsUrl: nats.url,
      jobFile: fx.jobFile,
      bankDir: fx.bankDir,
      workers: 1,
      coordinatorArgs: ['--metrics-port', 'off'],
    });
    procs.push(coord);
    await w.waitFor(/joined job 'lonely' \(coordinator [\w-]+\)/);
    assert.equal(await expectExit(coord, 90_000), 0, coord.output());
    assert.equal(await expectExit(w, 20_000), 0, w.output());
    assert.doesNotMatch(w.output(), /gave up joining/);
  });
});
