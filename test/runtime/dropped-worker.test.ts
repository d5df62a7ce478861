/**
 * Issue "Recovery that never gives up on a healthy job", items 2 and 3, with real processes and a real
 * nats-server: a worker declared dead while alive (paused with SIGSTOP past the heartbeat timeout; every worker
 * cut off by a nats-server outage) is told so and joins again, and a worker whose main thread is stuck while its
 * heartbeat thread still beats is declared hung and dropped. Each job completes with the single-process result.
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

const JOB = 'dropped';

describe('runtime: dropped while alive, hung while beating', { skip: natsSkipReason() }, () => {
  const suite = runtimeSuite({ jobId: JOB, steps: [20, 6], reference: true });

  const args = (bankDir: string, extra: string[] = []) => ({
    natsUrl: suite.nats.url,
    jobFile: suite.fx!.jobFile,
    bankDir,
    coordinatorArgs: ['--checkpoint-every', '5', '--heartbeat-timeout-ms', '1500', ...extra],
  });

  test('SIGSTOP a worker past the heartbeat timeout (min = max = 2): it is told to re-join and the job completes', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const a = args(`${suite.fx.bankDir}-pause`);
    const coord = suite.track(startCoordinator({ ...a, min: 2, max: 2 }));
    const w0 = suite.track(startWorker({ ...a, id: 'w0' }));
    const w1 = suite.track(startWorker({ ...a, id: 'w1' }));
    await coord.waitFor(/committed at stage 0 step 5/);
    w1.kill('SIGSTOP');
    const from = coord.mark();
    await coord.waitFor(/worker w1 missed heartbeats for \d+ ms: declared dead/, 15_000, from);
    // min = max = 2: nothing can go on without w1; before the fix the job stalled here for good.
    await coord.waitFor(/waiting for 1 more worker/, 5_000, from);
    await new Promise((r) => setTimeout(r, 2000));
    w1.kill('SIGCONT');
    t.diagnostic('w1 paused for about 3.5 s with a 1.5 s heartbeat timeout');
    await coord.waitFor(/worker w1 is beating but no longer a member: told to re-join/, 15_000, from);
    // w1 acts on it once its step handler returns (its all-reduce with w0 may have to time out first).
    await w1.waitFor(/the coordinator dropped this worker .*; joining again/, 60_000);
    const regen = await coord.waitFor(
      /generation (\d+) \([^)]*\): (w0, w1|w1, w0) from step (\d+)/,
      60_000,
      from,
    );
    assert.ok(Number(regen[3]) >= 5, `re-formed at step ${regen[3]}, before the committed step 5`);
    assert.equal(await expectExit(coord), 0, coord.output());
    assert.equal(await expectExit(w0, 20_000), 0, w0.output());
    assert.equal(await expectExit(w1, 20_000), 0, w1.output());
    await assertMatchesReference(openBank(a.bankDir), JOB, [20, 6], suite.reference, 'SIGSTOP', t);
  });

  test('nats-server down longer than the heartbeat timeout: every worker is dropped, re-joins, and the job completes', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const a = args(`${suite.fx.bankDir}-outage`);
    const coord = suite.track(startCoordinator({ ...a, min: 2, max: 2 }));
    const w0 = suite.track(startWorker({ ...a, id: 'w0' }));
    const w1 = suite.track(startWorker({ ...a, id: 'w1' }));
    await coord.waitFor(/committed at stage 0 step 5/);
    const from = coord.mark();
    await suite.nats.restart({ downMs: 4000 });
    t.diagnostic('nats-server was down for 4 s (heartbeat timeout 1.5 s) after the step-5 version');
    await coord.waitFor(/declared dead/, 15_000, from);
    await coord.waitFor(/told to re-join/, 30_000, from);
    const regen = await coord.waitFor(
      /generation \d+ \([^)]*\): (w0, w1|w1, w0) from step (\d+)/,
      60_000,
      from,
    );
    assert.ok(Number(regen[2]) >= 5, `re-formed at step ${regen[2]}, before the committed step 5`);
    assert.equal(await expectExit(coord), 0, coord.output());
    assert.equal(await expectExit(w0, 20_000), 0, w0.output());
    assert.equal(await expectExit(w1, 20_000), 0, w1.output());
    await assertMatchesReference(openBank(a.bankDir), JOB, [20, 6], suite.reference, 'nats outage', t);
  });

  test('a worker whose main thread is stuck (heartbeats still arrive) is declared hung and the job goes on', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const a = args(`${suite.fx.bankDir}-hung`, ['--progress-timeout', '3']);
    const coord = suite.track(startCoordinator({ ...a, min: 1, max: 2 }));
    const w0 = suite.track(startWorker({ ...a, id: 'w0' }));
    await coord.waitFor(/generation \d+ \([^)]*\): w0 from step 0/);
    // The first step w1 runs after it is admitted (at the next bank version) spins its main thread forever.
    const w1 = suite.track(startWorker({ ...a, id: 'w1', env: { PROMPTMESH_FAILPOINT: 'hang-at-step:0' } }));
    const at = Number((await w1.waitFor(/failpoint: hanging the main thread at step (\d+)/, 60_000))[1]);
    const from = coord.mark();
    const hung = await coord.waitFor(
      new RegExp(
        `worker w1 made no progress for (\\d+) ms \\(stuck in step ${at}: forward/backward\\), though its heartbeats arrive: declared hung`,
      ),
      20_000,
      from,
    );
    t.diagnostic(`w1 declared hung after ${hung[1]} ms without progress (--progress-timeout 3)`);
    assert.doesNotMatch(coord.output().slice(from, hung.index! + from), /w1 missed heartbeats/);
    await coord.waitFor(new RegExp(`generation \\d+ \\(worker w1 hung\\): w0 from step ${at}`), 10_000, from);
    assert.equal(await expectExit(coord), 0, coord.output());
    assert.equal(await expectExit(w0, 20_000), 0, w0.output());
    w1.kill('SIGKILL');
    await assertMatchesReference(openBank(a.bankDir), JOB, [20, 6], suite.reference, 'hung worker', t);
  });

  test('rank 0 evaluating longer than --progress-timeout is not declared hung, nor asked for its checkpoint again', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    // The first stage alone, evaluation batches of 2 (8 batches per evaluation: 2 tasks x 8 examples), each one
    // 1.8 s slower: both evaluations of rank 0 (step 0 and the last step, each inside a checkpoint) take over 14 s,
    // against a progress timeout of 3 s. Progress per batch keeps it alive; one milestone per evaluation would not.
    // And they are longer than the checkpoint re-send interval (12 s): the coordinator sees from the heartbeats that
    // rank 0 works on that checkpoint and does not re-send it (before, each drew a repeat, answered after the write).
    const jobFile = suite.fx.writeJob('slow-eval.json', (raw) => {
      raw.stages = raw.stages.slice(0, 1);
      for (const s of raw.stages as { train: Record<string, unknown> }[]) s.train.evalBatchSize = 2;
      return raw;
    });
    const a = { ...args(`${suite.fx.bankDir}-slow-eval`, ['--progress-timeout', '3']), jobFile };
    const coord = suite.track(startCoordinator({ ...a, min: 1, max: 1 }));
    const w0 = suite.track(
      startWorker({ ...a, id: 'w0', env: { PROMPTMESH_FAILPOINT: 'slow-eval-batch:1800' } }),
    );
    await w0.waitFor(/failpoint: every evaluation batch takes 1800 ms longer/, 60_000);
    assert.equal(await expectExit(coord, 180_000), 0, coord.output());
    assert.equal(await expectExit(w0, 20_000), 0, w0.output());
    assert.doesNotMatch(coord.output(), /declared hung/);
    assert.match(coord.output(), /complete/);
    assert.doesNotMatch(w0.output(), /requested again/);
    t.diagnostic(
      'rank 0 evaluated 8 batches of 1.8+ s per evaluation under --progress-timeout 3: not declared hung, no re-sent checkpoint',
    );
  });
});
