/**
 * Item 5 of the runtime issue, with real processes and a real nats-server: a worker killed with SIGKILL mid-step,
 * a restarted coordinator, a restarted nats-server. After each, the job completes and its final parameters equal
 * the single-process run's, which proves that no committed step was lost and none was applied twice.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
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

describe('runtime recovery', { skip: natsSkipReason() }, () => {
  // Stage 2 is long enough (versions at its steps 5 and 10) that a worker restarted late in stage 1 still finds a
  // bank version to be admitted at: with 4 steps, a slow restart on a loaded machine missed the whole job.
  const suite = runtimeSuite({ jobId: 'recov', steps: [30, 12], reference: true });

  const args = (bankDir: string, extra: string[] = []) => ({
    natsUrl: suite.nats.url,
    jobFile: suite.fx!.jobFile,
    bankDir,
    coordinatorArgs: ['--checkpoint-every', '5', ...extra],
  });

  test('kill -9 a worker mid-step: detected within seconds, survivors go on, a returning worker re-joins', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const a = args(`${suite.fx.bankDir}-kill`, ['--heartbeat-timeout-ms', '1500']);
    const coord = suite.track(startCoordinator({ ...a, min: 1, max: 3 }));
    const w0 = suite.track(startWorker({ ...a, id: 'w0' }));
    const w1 = suite.track(startWorker({ ...a, id: 'w1' }));
    // Generation 1 may start with whichever worker joined first; the other is added at the next bank version.
    await coord.waitFor(/generation \d+ \([^)]*\): (w0, w1|w1, w0) from step \d+/);
    await coord.waitFor(/committed at stage 0 step 5/);
    const killedAt = Date.now();
    w1.kill('SIGKILL');
    const from = coord.mark();
    const dead = await coord.waitFor(/worker w1 missed heartbeats for (\d+) ms: declared dead/, 15_000, from);
    const detectMs = Date.now() - killedAt;
    t.diagnostic(
      `killed w1 after the step-5 version; declared dead after ${detectMs} ms (silent ${dead[1]} ms)`,
    );
    assert.ok(detectMs < 6000, `detection took ${detectMs} ms`);
    const regen = await coord.waitFor(
      /generation (\d+) \(worker w1 timed out\): w0 from step (\d+)/,
      15_000,
      from,
    );
    // The survivor restores the last committed state: the new generation starts at the first uncommitted step.
    assert.ok(Number(regen[2]) >= 5, `restarted at step ${regen[2]}, before the committed step 5`);
    // A worker that comes back (new process, same id) joins at a later generation.
    const w1b = suite.track(startWorker({ ...a, id: 'w1' }));
    const rejoin = await coord.waitFor(
      /generation (\d+) \([^)]*\): (w0, w1) from step \d+/,
      60_000,
      coord.mark(),
    );
    assert.ok(Number(rejoin[1]) > Number(regen[1]), coord.output());
    assert.equal(await expectExit(coord), 0, coord.output());
    assert.equal(await expectExit(w0, 20_000), 0, w0.output());
    assert.equal(await expectExit(w1b, 20_000), 0, w1b.output());
    await assertMatchesReference(openBank(a.bankDir), 'recov', [30, 12], suite.reference, 'kill -9', t);
  });

  test('restart the coordinator: the new incarnation resumes from the bank head and the workers re-join it', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const a = args(`${suite.fx.bankDir}-coord`);
    const first = suite.track(startCoordinator({ ...a, name: 'coordinator-1' }));
    const w0 = suite.track(startWorker({ ...a, id: 'w0' }));
    const w1 = suite.track(startWorker({ ...a, id: 'w1' }));
    await first.waitFor(/committed at stage 0 step 10/);
    first.kill('SIGKILL');
    await first.exited;
    const head = await openBank(a.bankDir).get('recov@head');
    const second = suite.track(startCoordinator({ ...a, name: 'coordinator-2' }));
    const resumed = await second.waitFor(
      /resuming job 'recov' from bank version (\w+) \(stage 0, step (\d+)\)/,
    );
    assert.ok(head.id.startsWith(resumed[1]!), `resumed from ${resumed[1]}, the head was ${head.id}`);
    assert.equal(Number(resumed[2]), head.step);
    await second.waitFor(/generation 1 \(start\): (w0, w1|w1, w0) from step (\d+)/);
    assert.equal(await expectExit(second), 0, second.output());
    assert.equal(await expectExit(w0, 20_000), 0, w0.output());
    assert.equal(await expectExit(w1, 20_000), 0, w1.output());
    await assertMatchesReference(
      openBank(a.bankDir),
      'recov',
      [30, 12],
      suite.reference,
      'coordinator restart',
      t,
    );
  });

  test('restart nats-server mid-job: everyone reconnects and the job completes', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const a = args(`${suite.fx.bankDir}-nats`);
    const coord = suite.track(startCoordinator(a));
    const w0 = suite.track(startWorker({ ...a, id: 'w0' }));
    const w1 = suite.track(startWorker({ ...a, id: 'w1' }));
    await coord.waitFor(/committed at stage 0 step 5/);
    await suite.nats.restart({ downMs: 1000 });
    t.diagnostic('nats-server was down for 1 s after the step-5 version');
    assert.equal(await expectExit(coord), 0, coord.output());
    assert.equal(await expectExit(w0, 20_000), 0, w0.output());
    assert.equal(await expectExit(w1, 20_000), 0, w1.output());
    await assertMatchesReference(openBank(a.bankDir), 'recov', [30, 12], suite.reference, 'nats restart', t);
  });
});
