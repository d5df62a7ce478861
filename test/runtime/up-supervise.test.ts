/**
 * Issue "Survive anything in production", item 1: `promptmesh up` supervises its processes. With real processes
 * (up's own nats-server, coordinator and two workers), kill -9 one of them mid-stage: up restarts it, the job ends
 * at its last step with exit 0, the failure costs at most one step, every bank version is there, and the final
 * parameters equal the single-process run's (no committed step lost, none applied twice).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { selectBackend } from '../../src/backend/index.js';
import { natsSkipReason } from '../helpers/nats.js';
import {
  assertMatchesReference,
  type CliProcess,
  expectExit,
  killAll,
  makeRuntimeFixture,
  openBank,
  type RuntimeFixture,
  referenceRun,
  spawnCli,
} from '../helpers/runtime-fixture.js';
import { SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

const JOB = 'upsup';
const STEPS: [number, number] = [30, 12];
const EVERY = 5;

describe('up: kill -9 any of its processes and the job still completes', { skip: natsSkipReason() }, () => {
  let fx: RuntimeFixture | undefined;
  let reference: Map<string, Float32Array>[];
  const procs: CliProcess[] = [];

  before(async () => {
    fx = await makeRuntimeFixture({ jobId: JOB, steps: STEPS });
    if (!fx) return;
    await selectBackend({ requested: 'wasm' });
    reference = await referenceRun(fx.job());
  });
  after(async () => {
    await killAll(procs);
    fx?.cleanup();
  });

  /**
   * Starts `up` on the fixture job, waits until both workers train stage 1 and a progress line reports a step
   * at least 2 past the last bank version (so a roll-back to the bank would redo 2 or more), kills the process
   * `victim` names with SIGKILL, and checks the job to its end. Returns up's output after the kill.
   */
  async function killAndComplete(
    label: string,
    victim: RegExp,
    t: { diagnostic(m: string): void },
    signal: NodeJS.Signals = 'SIGKILL',
  ): Promise<{ after: string; committedBeforeKill: number }> {
    const bankDir = `${fx!.bankDir}-${label}`;
    const up = spawnCli(
      `up-${label}`,
      [
        'up',
        '--workers',
        '2',
        '--config',
        fx!.jobFile,
        '--bank',
        bankDir,
        '--backend',
        'wasm',
        '--checkpoint-every',
        String(EVERY),
        '--metrics-port',
        'off',
      ],
      // tty: the coordinator draws every committed step, so the output shows which step had committed at the kill.
      { NATS_URL: '', PROMPTMESH_PROGRESS: 'tty' },
    );
    procs.push(up);
    await up.waitFor(
      /generation \d+ \([^)]*\): (worker-0, worker-1|worker-1, worker-0) from step 0/,
      120_000,
    );
    const version = await up.waitFor(/committed at stage 0 step 5\b/, 120_000);
    await up.waitFor(/\[s1\] step ([12]?[2-47-9])\/30 /, 60_000, version.index);
    const pid = Number(up.output().match(victim)?.[1]);
    assert.ok(pid > 0, `no pid for ${victim} in:\n${up.output()}`);
    const from = up.mark();
    process.kill(pid, signal);
    // The last step the coordinator drew before the kill had committed.
    const committedBeforeKill = Math.max(
      ...[
        ...up
          .output()
          .slice(0, from)
          .matchAll(/\[s1\] step (\d+)\/30 /g),
      ].map((m) => Number(m[1])),
    );
    t.diagnostic(`${label}: killed pid ${pid} after step ${committedBeforeKill} of stage 1 had committed`);
    assert.equal(await expectExit(up, 240_000), 0, up.output());
    const out = up.output().slice(from);
    assert.match(out, /job complete/);
    // Every version is there: each stage's every EVERY-th step and its last one.
    const bank = openBank(bankDir);
    const versions = await Promise.all((await bank.list({ job: JOB })).map((v) => bank.get(v.id)));
    const have = new Set(versions.map((v) => `${v.extra?.stage}:${v.step}`));
    t.diagnostic(`${label}: ${versions.length} versions (${[...have].sort().join(' ')})`);
    for (const [stage, steps] of STEPS.entries()) {
      for (let s = EVERY; s <= steps; s += EVERY)
        assert.ok(have.has(`${stage}:${s}`), `no version at ${stage}:${s}`);
      assert.ok(have.has(`${stage}:${steps}`), `no final version of stage ${stage}`);
    }
    await assertMatchesReference(openBank(bankDir), JOB, STEPS, reference, label, t);
    return { after: out, committedBeforeKill };
  }

  /**
   * The first generation formed in stage 1 after the kill restarts from a step at most one before the one that
   * had committed. False when stage 1 formed no generation after the kill (nobody was dropped).
   */
  function assertAtMostOneStepRedone(
    after: string,
    committed: number,
    t: { diagnostic(m: string): void },
  ): boolean {
    const stage2 = after.search(/generation \d+ \(stage s2\)/);
    const g = after
      .slice(0, stage2 < 0 ? undefined : stage2)
      .match(/generation \d+ \([^)]*\): [^\n]* from step (\d+)/);
    if (!g) return false;
    const resumed = Number(g[1]);
    t.diagnostic(`the next generation started at step ${resumed} (step ${committed} had committed)`);
    assert.ok(resumed >= committed - 1, `resumed at step ${resumed} after step ${committed} had committed`);
    return true;
  }

  /** up's own lines and the coordinator's membership lines after the kill, for the test log. */
  function story(after: string, t: { diagnostic(m: string): void }): void {
    for (const l of after.split(/[\r\n]+/)) {
      if (/^\[up\]|\[coordinator\] (generation|resuming|re-joined|worker \S+ (missed|joined|left))/.test(l))
        t.diagnostic(l.replaceAll('\x1b[2K', '').slice(0, 200));
    }
  }

  test('kill -9 a worker: restarted, the survivor goes on meanwhile, the job completes', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const { after, committedBeforeKill } = await killAndComplete(
      'worker',
      /started worker-1 \(pid (\d+)\)/,
      t,
    );
    story(after, t);
    assert.match(after, /worker-1 killed by SIGKILL: restart 1 of the 3 allowed in 5\.0 s/);
    // The survivor trains alone until the restarted worker is admitted at a bank version.
    assert.match(after, /generation \d+ \(worker worker-1 timed out\): worker-0 from step \d+/);
    assert.match(after, /started worker-1 \(pid \d+\)/);
    assert.ok(assertAtMostOneStepRedone(after, committedBeforeKill, t), after);
  });

  test('kill -9 the coordinator: restarted, it continues from the step the workers hold', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const { after, committedBeforeKill } = await killAndComplete(
      'coordinator',
      /started coordinator \(pid (\d+)\)/,
      t,
    );
    story(after, t);
    assert.match(after, /coordinator killed by SIGKILL: restart 1 of the 3 allowed/);
    assert.match(after, /resuming job 'upsup' from bank version \w+ \(stage 0, step \d+\)/);
    // The join grace lets both survivors re-join before the first generation of the new incarnation.
    assert.match(after, /generation 1 \(start\): (worker-0, worker-1|worker-1, worker-0) from step \d+/);
    assert.ok(assertAtMostOneStepRedone(after, committedBeforeKill, t), after);
  });

  test('SIGTERM the coordinator (an eviction): it exits 143, the workers keep their state, the job completes', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const { after, committedBeforeKill } = await killAndComplete(
      'coordinator-term',
      /started coordinator \(pid (\d+)\)/,
      t,
      'SIGTERM',
    );
    story(after, t);
    assert.match(after, /coordinator exited with 143: restart 1 of the 3 allowed/);
    // Not stopped with the job: both workers re-join the new incarnation with what they hold.
    assert.doesNotMatch(after, /\[worker-\d\] stopped: (?!job complete)/);
    assert.match(after, /generation 1 \(start\): (worker-0, worker-1|worker-1, worker-0) from step \d+/);
    assert.ok(assertAtMostOneStepRedone(after, committedBeforeKill, t), after);
  });

  test('kill -9 the nats-server: restarted on its port, everyone reconnects, the job completes', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const { after, committedBeforeKill } = await killAndComplete('nats', /nats-server \(pid (\d+)\)/, t);
    story(after, t);
    assert.match(after, /nats-server killed by SIGKILL: restart 1 of the 3 allowed/);
    assert.match(after, /nats-server \(pid \d+\) with JetStream on nats:\/\/127\.0\.0\.1:\d+/);
    // Workers dropped during the outage re-join from memory: a generation, if any, loses at most a step.
    if (!assertAtMostOneStepRedone(after, committedBeforeKill, t)) t.diagnostic('no worker was dropped');
  });
});
