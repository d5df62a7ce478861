/**
 * Resuming a finished or stopped job from any bank version, with a different number of workers (item 5 of the
 * runtime issue): `coordinator --from VERSION` continues from that version and moves the job's head from wherever
 * it is; a larger --steps continues a finished stage. Runs share one bank, in order.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { natsSkipReason } from '../helpers/nats.js';
import {
  bankParams,
  expectExit,
  firstDifference,
  startCoordinator,
  startWorker,
} from '../helpers/runtime-fixture.js';
import { runtimeSuite } from '../helpers/runtime-suite.js';
import { SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

describe('runtime: resume from any bank version', { skip: natsSkipReason() }, () => {
  const suite = runtimeSuite({ jobId: 'resume', reference: true });

  /** Runs the job to the end with `n` workers; returns the coordinator's log. */
  async function run(n: number, coordinatorArgs: string[], extra: string[] = []): Promise<string> {
    const a = { natsUrl: suite.nats.url, jobFile: suite.fx!.jobFile, bankDir: suite.fx!.bankDir, extra };
    const coord = startCoordinator({
      ...a,
      workers: n,
      coordinatorArgs: ['--checkpoint-every', '3', ...coordinatorArgs],
    });
    const workers = Array.from({ length: n }, (_, i) => startWorker({ ...a, id: `w${i}` }));
    suite.procs.push(coord, ...workers);
    assert.equal(await expectExit(coord), 0, coord.output());
    for (const w of workers) assert.equal(await expectExit(w, 20_000), 0, w.output());
    return coord.output();
  }

  async function assertStage(ref: string, stage: 0 | 1, label: string, t: { diagnostic(m: string): void }) {
    const want = suite.reference[stage]!;
    const diff = firstDifference(want, await bankParams(suite.fx!.bank(), ref, want.keys()));
    t.diagnostic(`${label}: ${diff ?? 'byte-identical to the single process'}`);
    assert.equal(diff, undefined, `${label}: ${diff}`);
  }

  test('a job run with 2 workers, then run again: already complete, nothing changes', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    await run(2, []);
    const head = await suite.fx.bank().get('resume@head');
    await assertStage(head.id, 1, '2 workers', t);
    // Only the coordinator: it exits at once, and a worker would wait for a coordinator of that job.
    const coord = startCoordinator({
      natsUrl: suite.nats.url,
      jobFile: suite.fx.jobFile,
      bankDir: suite.fx.bankDir,
      workers: 1,
    });
    suite.procs.push(coord);
    assert.equal(await expectExit(coord), 0, coord.output());
    assert.match(coord.output(), /already completed/);
    assert.equal((await suite.fx.bank().get('resume@head')).id, head.id);
  });

  test('--from the stage-1 version with 1 worker: stage 2 again, same parameters, head moved', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const bank = suite.fx.bank();
    const before = (await bank.list({ job: 'resume' })).map((v) => v.id);
    const s1 = await bank.get('resume.s1');
    const log = await run(1, ['--from', 'resume.s1']);
    assert.match(
      log,
      new RegExp(`resuming job 'resume' from bank version ${s1.id.slice(0, 12)} \\(stage 1, step 0\\)`),
    );
    const head = await bank.get('resume@head');
    assert.ok(!before.includes(head.id), 'a new head version');
    assert.equal(head.step, 4);
    assert.equal(head.extra?.inputs, s1.id, 'stage 2 read its inputs from the stage-1 version');
    await assertStage(head.id, 1, '--from stage 1, 1 worker', t);
    // Nothing committed before is lost.
    const after = (await bank.list({ job: 'resume' })).map((v) => v.id);
    for (const id of before) assert.ok(after.includes(id), `version ${id} disappeared`);
  });

  test('--from a mid-stage version (stage 1 step 3) with 3 workers: the rest of the job, same parameters', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const bank = suite.fx.bank();
    const mid = (await bank.list({ job: 'resume' })).find(
      (v) => v.step === 3 && v.method === 'prompt-tuning',
    );
    assert.ok(mid, 'a version at stage 1 step 3 (checkpoint every 3)');
    const log = await run(3, ['--from', mid.id.slice(0, 10)]);
    assert.match(log, /\(stage 0, step 3\)/);
    assert.equal((await bank.get(mid.id)).step, 3);
    const s1 = await bank.get('resume.s1');
    // The job branched at the mid version: the first run's step 6 and this run's both derive from it.
    const children = (await bank.list({ job: 'resume' })).filter((v) => v.parent === mid.id);
    assert.equal(children.length, 2, JSON.stringify(children));
    assert.ok(children.some((c) => c.id === s1.parent || c.id === s1.id));
    await assertStage(s1.id, 0, '--from stage 1 step 3, 3 workers: stage 1', t);
    await assertStage((await bank.get('resume@head')).id, 1, '--from stage 1 step 3, 3 workers: stage 2', t);
  });

  test('a finished job with a larger --steps continues its last stage from its last version', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const bank = suite.fx.bank();
    const last = await bank.get('resume@head');
    const log = await run(2, [], ['--steps', '7']);
    assert.match(log, new RegExp(`from bank version ${last.id.slice(0, 12)} \\(stage 1, step 4\\)`));
    const head = await bank.get('resume@head');
    assert.equal(head.step, 7);
    assert.equal(head.extra?.stageName, 's2');
    assert.equal(head.extra?.final, true);
    // The chain from the new head reaches the old one.
    let v = head;
    while (v.parent && v.id !== last.id) v = await bank.get(v.parent);
    assert.equal(v.id, last.id);
  });
});
