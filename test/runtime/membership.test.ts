/**
 * The coordinator's membership (src/runtime/coordinator/membership.ts) with an injected clock: admission and its
 * refusals, liveness (silent = dead, beating without progress while waited on = hung), the re-join notices' rate
 * limit, and the member list. The same rules run in the real processes of recovery.test.ts and
 * dropped-worker.test.ts; here each is pinned to the millisecond.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Heartbeat, type JoinRequest, PROTOCOL_VERSION } from '../../src/control/protocol.js';
import { Membership } from '../../src/runtime/coordinator/membership.js';

function setup(maxWorkers = 2) {
  const clock = { t: 1000 };
  const log: string[] = [];
  const reasons: string[] = [];
  const m = new Membership({
    jobId: 'job',
    incarnation: 'inc',
    maxWorkers,
    heartbeatMs: 500,
    heartbeatTimeoutMs: 4000,
    progressTimeoutMs: 10_000,
    now: () => clock.t,
    log: (l) => log.push(l),
    onMembership: (r) => reasons.push(r),
  });
  return { m, clock, log, reasons };
}

const join = (workerId: string, address = `127.0.0.1:${7000 + workerId.length}`): JoinRequest => ({
  type: 'join',
  workerId,
  jobId: 'job',
  protocol: PROTOCOL_VERSION,
  address,
});

const beat = (workerId: string, progress?: number): Heartbeat => ({
  type: 'heartbeat',
  workerId,
  incarnation: 'inc',
  generation: 1,
  step: 0,
  ...(progress !== undefined ? { progress } : {}),
});

describe('membership', () => {
  test('admission refuses a wrong job or protocol, a bad address, a live duplicate and a full job', () => {
    const { m, reasons } = setup(2);
    const refused = (r: ReturnType<Membership['admit']>) => (r.type === 'refused' ? r.reason : 'accepted');
    assert.match(refused(m.admit({ ...join('a'), jobId: 'other' })), /wrong job 'other'/);
    assert.match(refused(m.admit({ ...join('a'), protocol: 1 })), /protocol 1 is not supported/);
    assert.match(refused(m.admit({ ...join('a'), address: 'nowhere' })), /host:port are required/);
    assert.equal(m.admit(join('a', 'h:1')).type, 'accepted');
    assert.match(refused(m.admit(join('a', 'h:2'))), /already a live member at h:1/);
    assert.equal(m.admit(join('a', 'h:1')).type, 'accepted', 'the same worker re-joining is admitted');
    assert.equal(m.admit(join('b')).type, 'accepted');
    assert.match(refused(m.admit(join('c'))), /the job is full \(2 workers\)/);
    assert.equal(m.size, 2);
    assert.deepEqual(reasons, ['joined', 'joined', 'joined']);
  });

  test('live() is join order, capped at maxWorkers; a re-join keeps its place', () => {
    const { m, clock } = setup(3);
    for (const id of ['b', 'a', 'c']) {
      m.admit(join(id));
      clock.t += 10;
    }
    m.admit(join('b'));
    assert.deepEqual(
      m.live().map((w) => w.workerId),
      ['b', 'a', 'c'],
    );
  });

  test('a silent worker is dead after the heartbeat timeout; a member that makes no progress while waited on is hung', () => {
    const { m, clock, reasons } = setup(2);
    m.admit(join('a'));
    m.admit(join('b'));
    m.members = [
      { workerId: 'a', rank: 0, address: 'x:1' },
      { workerId: 'b', rank: 1, address: 'x:2' },
    ];
    clock.t += 3000;
    m.heartbeat(beat('a', 1));
    m.heartbeat(beat('b', 1));
    assert.deepEqual(
      m.expired(() => true),
      [],
    );
    // a goes silent; b beats on, but its progress counter stops.
    for (let i = 0; i < 12; i++) {
      clock.t += 1000;
      m.heartbeat(beat('b', 1));
    }
    assert.deepEqual(
      m.expired(() => false).map((e) => e.reason),
      ['worker a timed out'],
      'not waited on: b is not hung',
    );
    assert.deepEqual(
      m.expired((id) => id === 'b').map((e) => e.reason),
      ['worker a timed out', 'worker b hung'],
    );
    assert.ok(reasons.includes('timeout') && reasons.includes('hung'));
    assert.equal(m.drop('a'), true);
    assert.equal(m.drop('a'), false, 'dropped once');
    assert.deepEqual(
      m.members.map((x) => x.workerId),
      ['b'],
    );
  });

  test('a beating stranger is told to re-join at most once a second, and logged once every 30 s', () => {
    const { m, clock, log } = setup();
    assert.equal(m.heartbeat(beat('ghost')), false);
    assert.equal(m.shouldTellRejoin('ghost'), true);
    clock.t += 500;
    assert.equal(m.shouldTellRejoin('ghost'), false);
    clock.t += 600;
    assert.equal(m.shouldTellRejoin('ghost'), true);
    assert.equal(log.filter((l) => l.includes('told to re-join')).length, 1);
    clock.t += 30_000;
    assert.equal(m.shouldTellRejoin('ghost'), true);
    assert.equal(log.filter((l) => l.includes('told to re-join')).length, 2);
    m.admit(join('ghost'));
    assert.equal(m.heartbeat(beat('ghost')), true);
  });

  test('leave says whether the generation must be re-formed', () => {
    const { m } = setup();
    m.admit(join('a'));
    m.admit(join('b'));
    m.members = [{ workerId: 'a', rank: 0, address: 'x:1' }];
    assert.equal(m.leave('b', 'bye'), false);
    assert.equal(m.leave('a', 'bye'), true);
    assert.equal(m.leave('a', 'again'), false);
    assert.equal(m.size, 0);
  });
});
