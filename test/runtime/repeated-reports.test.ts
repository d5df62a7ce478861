/**
 * Every report reaches the coordinator twice (PROMPTMESH_FAILPOINT=repeat-reports), with real processes and a real
 * nats-server. Repeats are normal traffic: the coordinator re-sends a step or checkpoint request whose answer is
 * late, and the worker answers each re-send from memory, so a slow checkpoint is acknowledged twice. Each report
 * must act once. CI caught the case this test pins down: two acknowledgements of a stage's final checkpoint both
 * finished the stage, so the next stage was skipped (its "final version" was the previous stage's, relabelled) and
 * the job reported itself complete without training it.
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

const JOB = 'twice';
const STEPS: [number, number] = [6, 4];

describe('runtime: every report arrives twice', { skip: natsSkipReason() }, () => {
  const suite = runtimeSuite({ jobId: JOB, steps: STEPS, reference: true });

  test('each ready, step and checkpoint report acts once: both stages train, bytes equal one process', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const a = {
      natsUrl: suite.nats.url,
      jobFile: suite.fx.jobFile,
      bankDir: `${suite.fx.bankDir}-twice`,
      coordinatorArgs: ['--checkpoint-every', '2'],
    };
    const env = { PROMPTMESH_FAILPOINT: 'repeat-reports' };
    const coord = startCoordinator({ ...a, min: 2, max: 2 });
    const w0 = startWorker({ ...a, id: 'w0', env });
    const w1 = startWorker({ ...a, id: 'w1', env });
    suite.procs.push(coord, w0, w1);
    assert.equal(await expectExit(coord, 180_000), 0, coord.output());
    assert.equal(await expectExit(w0, 20_000), 0, w0.output());
    assert.equal(await expectExit(w1, 20_000), 0, w1.output());
    // One line per version written, each stage's steps in order: a repeat acted on twice adds a line (the bug
    // logged stage 0's final version again as "stage 1 step 6").
    const committed = [...coord.output().matchAll(/committed at stage (\d+) step (\d+)/g)].map(
      (m) => `${m[1]}:${m[2]}`,
    );
    assert.deepEqual(committed, ['0:2', '0:4', '0:6', '1:2', '1:4'], coord.output());
    assert.match(coord.output(), /generation \d+ \(stage s2\)/);
    await assertMatchesReference(openBank(a.bankDir), JOB, STEPS, suite.reference, 'reports twice', t);
  });
});
