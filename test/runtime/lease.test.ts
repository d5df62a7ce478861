/**
 * One coordinator at a time (issue "Recovery that never gives up on a healthy job", item 5), with real processes
 * and a real nats-server with JetStream: a second coordinator of a running job gives up after --lease-wait naming
 * the holder, or waits and takes over when the holder dies (kill -9), the job then completing with the
 * single-process result; a coordinator whose lease is taken from it stops without stopping the workers.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connect } from 'nats';
import { CoordinatorLease, LEASE_BUCKET } from '../../src/runtime/coordinator/lease.js';
import { natsSkipReason } from '../helpers/nats.js';
import {
  assertMatchesReference,
  expectExit,
  openBank,
  startCoordinator,
  startWorker,
} from '../helpers/runtime-fixture.js';
import { runtimeSuite } from '../helpers/runtime-suite.js';
import { SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

const JOB = 'lease';

describe('runtime: one coordinator per job (lease)', { skip: natsSkipReason() }, () => {
  const suite = runtimeSuite({ jobId: JOB, steps: [24, 4], reference: true });

  const args = (bankDir: string, coordinatorArgs: string[] = []) => ({
    natsUrl: suite.nats.url,
    jobFile: suite.fx!.jobFile,
    bankDir,
    coordinatorArgs: ['--checkpoint-every', '4', ...coordinatorArgs],
  });

  test('a second coordinator gives up naming the holder, a third waits and takes over when the holder dies', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const a = args(suite.fx.bankDir);
    const first = suite.track(startCoordinator({ ...a, workers: 1, name: 'first' }));
    await first.waitFor(/holds the coordinator lease of job 'lease'/, 30_000);
    const second = suite.track(
      startCoordinator({ ...a, workers: 1, name: 'second', coordinatorArgs: ['--lease-wait', '1'] }),
    );
    assert.notEqual(await expectExit(second, 30_000), 0);
    assert.match(
      second.output(),
      new RegExp(
        `another coordinator holds job '${JOB}' \\(host [^,]+, pid ${first.child.pid}, since [^)]+\\)`,
      ),
    );
    const third = suite.track(startCoordinator({ ...a, workers: 1, name: 'third' }));
    await third.waitFor(new RegExp(`job '${JOB}' is held by .* pid ${first.child.pid}`), 30_000);
    const worker = suite.track(startWorker({ ...a, id: 'w1' }));
    await first.waitFor(/committed at stage 0 step 4/, 60_000);
    assert.doesNotMatch(third.output(), /generation \d+/, 'the waiting coordinator formed nothing');
    first.kill('SIGKILL');
    await third.waitFor(
      new RegExp(`held by pid ${first.child.pid} on this host, which is gone; taking over`),
      30_000,
    );
    assert.equal(await expectExit(third, 120_000), 0, third.output());
    assert.equal(await expectExit(worker, 30_000), 0, worker.output());
    await assertMatchesReference(
      openBank(suite.fx.bankDir),
      JOB,
      [24, 4],
      suite.reference,
      'holder killed, waiter took over',
      t,
    );
  });

  test('a coordinator whose lease is taken stops at once and leaves the workers to the new holder', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const coord = suite.track(
      startCoordinator({
        ...args(`${suite.fx.bankDir}-lost`, ['--lease-ttl', '1']),
        workers: 1,
        name: 'robbed',
      }),
    );
    await coord.waitFor(/holds the coordinator lease of job 'lease'/, 30_000);
    // Someone else's lease replaces ours (as when ours expired during a long pause and another coordinator
    // started): delete and re-create the key.
    const nc = await connect({ servers: suite.nats.url });
    try {
      const kv = await nc.jetstream().views.kv(LEASE_BUCKET);
      const mine = await kv.get(JOB);
      assert.ok(mine && mine.operation === 'PUT', 'the coordinator holds a lease');
      await kv.delete(JOB);
      await kv.create(JOB, JSON.stringify({ incarnation: 'other', host: 'elsewhere', pid: 1, since: 'now' }));
    } finally {
      await nc.close();
    }
    assert.notEqual(await expectExit(coord, 30_000), 0);
    assert.match(coord.output(), new RegExp(`the coordinator lease of job '${JOB}' was lost`));
  });

  test('renewal: our own value at a new revision stays ours, an expired key is taken again, another holder is lost', async () => {
    // In process, on the real nats-server. A NATS restart can apply a renewal and lose its reply ("TIMEOUT"): the
    // key then holds our value at a revision we never saw, and the next compare-and-set fails. CI once saw a
    // coordinator stop there ("lease lost (TIMEOUT); another coordinator holds it now") while nobody else did.
    const job = 'lease-renewal';
    const nc = await connect({ servers: suite.nats.url });
    const lost: string[] = [];
    const logs: string[] = [];
    const lease = await CoordinatorLease.acquire(nc, job, {
      ttlMs: 900,
      waitMs: 0,
      incarnation: 'renewal-test',
      log: (l) => logs.push(l),
      onLost: (why) => lost.push(why),
    });
    assert.ok(lease, 'the nats-server of the tests runs JetStream');
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    try {
      const kv = await nc.jetstream().views.kv(LEASE_BUCKET);
      const mine = (await kv.get(job))!;
      // 1. The renewal applied, its reply lost: our value, a revision the lease does not know.
      const moved = await kv.put(job, mine.string());
      await sleep(800);
      assert.deepEqual(lost, [], 'our own value at a new revision is still our lease');
      const after1 = (await kv.get(job))!;
      assert.ok(after1.revision > moved, 'renewals go on from the new revision');
      // 2. Expired while paused (nobody took it): created again.
      await kv.delete(job);
      await sleep(800);
      assert.deepEqual(lost, []);
      assert.equal((await kv.get(job))?.string(), mine.string(), 'the lease holds our value again');
      assert.ok(
        logs.some((l) => /had expired and nobody held it: taken again/.test(l)),
        logs.join('\n'),
      );
      // 3. Another coordinator holds it: lost, once, naming the holder.
      await kv.put(job, JSON.stringify({ incarnation: 'other', host: 'elsewhere', pid: 7, since: 'now' }));
      await sleep(800);
      assert.equal(lost.length, 1, lost.join('\n'));
      assert.match(lost[0]!, /lease of job 'lease-renewal' was lost .*the coordinator on elsewhere pid 7/);
    } finally {
      await lease.release();
      await nc.close();
    }
  });
});
