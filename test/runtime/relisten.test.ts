/**
 * The worker's re-listen after a generation change, with real processes. A peer stuck mid-step (a failpoint spins
 * its main thread) keeps its connections open, so when the survivor's all-reduce times out, closing its collective
 * takes the transport's whole 2 s grace; the coordinator has meanwhile dropped the stuck peer and formed the next
 * generation, whose message waits in the survivor's queue behind the failed step. The survivor must bind its port for that
 * generation after the close, and the close must not bind it again afterwards (EADDRINUSE: "cannot listen").
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { natsSkipReason } from '../helpers/nats.js';
import { expectExit, startCoordinator, startWorker } from '../helpers/runtime-fixture.js';
import { runtimeSuite } from '../helpers/runtime-suite.js';
import { SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

describe('runtime: re-listen after a generation change', { skip: natsSkipReason() }, () => {
  const suite = runtimeSuite({ jobId: 'relisten', steps: [60, 0] });

  test('a peer stuck mid-step: the survivor re-forms on its port without a bind error', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const a = { natsUrl: suite.nats.url, jobFile: suite.fx.jobFile, bankDir: suite.fx.bankDir };
    const coord = startCoordinator({
      ...a,
      min: 1,
      max: 2,
      coordinatorArgs: ['--progress-timeout', '2', '--checkpoint-every', '10', '--join-grace', '30'],
    });
    const w0 = startWorker({ ...a, id: 'w0' });
    // w1's main thread hangs at step 3's forward/backward, before its all-reduce; its process (and so its
    // connections to w0) stays alive, and its heartbeat thread keeps beating.
    const w1 = startWorker({ ...a, id: 'w1', env: { PROMPTMESH_FAILPOINT: 'hang-at-step:3' } });
    suite.procs.push(coord, w0, w1);
    // The coordinator drops w1 as hung after 2 s and forms the next generation; w0's all-reduce fails when its
    // wait for w1 times out (10 s), and that generation's message, queued meanwhile, runs right after.
    await coord.waitFor(/worker w1 .*(no progress|hung)/i, 60_000);
    await w0.waitFor(/error: .*(PeerFailed|Collective)/, 60_000);
    await w0.waitFor(/generation \d+: rank 0 of 1/, 60_000);
    assert.equal(await expectExit(coord, 180_000), 0, coord.output());
    assert.equal(await expectExit(w0), 0, w0.output());
    assert.doesNotMatch(w0.output(), /cannot listen|EADDRINUSE/);
  });
});
