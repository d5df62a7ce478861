/**
 * `evalEvery` in the distributed runtime: rank 0 evaluates at every evalEvery-th step (the coordinator asks for a
 * bank version there), and a stage hands on its best evaluated state (the highest validation average, the earliest
 * on ties), as the single-process trainer keeps its best parameters. The job: prompt tuning on the three demo
 * targets (stage 'first'), then ATTEMPT-m attending over those prompts (stage 'second'), 6 steps each, evaluated
 * every 2 on 20 examples per task. On the shipped backbone neither stage's best step is its last (first: step 4
 * of 6; second: step 2), on wasm and native alike, so a runtime that kept the last step, or started the second
 * stage from the first stage's last step, fails here. (Ties, the earliest wins: history.test.ts.)
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { demoJob } from '../../src/config/demo-job.js';
import { loadTrainedState } from '../../src/train/trained-state.js';
import { testBackend } from '../helpers/backend.js';
import { natsSkipReason } from '../helpers/nats.js';
import {
  bankParams,
  type CliProcess,
  expectExit,
  firstDifference,
  killAll,
  openBank,
  spawnCli,
} from '../helpers/runtime-fixture.js';

const STEPS = 6;
const EVERY = 2;

function evalEveryJob(): Record<string, unknown> {
  const demo = JSON.parse(JSON.stringify(demoJob({ steps: STEPS })));
  const [sources, targets] = demo.stages;
  const tasks: string[] = targets.tasks;
  const stages = [
    { ...sources, name: 'first', tasks },
    { ...targets, name: 'second', method: { ...targets.method, sources: tasks.map((t) => `prompt.${t}`) } },
  ];
  for (const s of stages) {
    delete s.eval;
    s.train = { ...s.train, evalEvery: EVERY, evalExamples: 20 };
  }
  return { ...demo, jobId: 'ee', stages };
}

/** The score summary lines of a run's output (`up` may prefix them with the process's name). */
const summaryLines = (output: string) =>
  [...output.matchAll(/stage '.*\(untrained -> trained at step \d+, the best of \d+ evaluations\)$/gm)].map(
    (m) => m[0],
  );

describe('runtime: evalEvery evaluates on rank 0 and each stage hands on its best version, as train does', {
  skip: natsSkipReason(),
}, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-evalevery-'));
  const config = path.join(dir, 'job.json');
  fs.writeFileSync(config, JSON.stringify(evalEveryJob(), null, 2));
  const procs: CliProcess[] = [];
  after(async () => {
    await killAll(procs);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  let upOutput = '';

  test('up --workers 2: a scored version at every evaluation step; the final versions carry the best state', async () => {
    const bank = path.join(dir, 'bank');
    const up = spawnCli(
      'up',
      ['up', '--workers', '2', '--config', config, '--bank', bank, '--backend', testBackend()],
      { NATS_URL: '' },
    );
    procs.push(up);
    assert.equal(await expectExit(up, 300_000), 0, up.output());
    upOutput = up.output();
    const b = openBank(bank);
    const chain = await b.lineage('ee@head');
    const bestSteps: number[] = [];
    for (const stage of [0, 1]) {
      const versions = chain.filter((m) => Number(m.extra?.stage) === stage).reverse();
      const scored = versions.filter((m) => m.metrics.validationAverage !== undefined);
      assert.deepEqual(
        scored.map((m) => m.step),
        [2, 4, 6],
        `stage ${stage}: versions with scores at every evaluation step`,
      );
      const final = versions.find((m) => m.extra?.final === true);
      assert.ok(final && final.step === STEPS, `stage ${stage}: no final version at step ${STEPS}`);
      const best = final.extra?.best as { step: number; version: string } | undefined;
      assert.ok(best, `stage ${stage}: the final version names no best (expected an earlier step here)`);
      const from = scored.find((m) => m.id === best.version);
      assert.ok(from && from.step === best.step, `stage ${stage}: best ${JSON.stringify(best)}`);
      // The best: the highest validation average of the stage's evaluations, the earliest on ties.
      const top = Math.max(...scored.map((m) => m.metrics.validationAverage!));
      assert.equal(best.step, scored.find((m) => m.metrics.validationAverage === top)!.step);
      assert.ok(best.step < STEPS);
      // The final version holds that version's tensors and scores (the last step's are in the history).
      for (const [name, t] of Object.entries(final.tensors))
        assert.equal(t.digest, from.tensors[name]!.digest, `stage ${stage}: '${name}'`);
      assert.deepEqual(final.metrics, from.metrics);
      bestSteps.push(best.step);
    }
    // The second stage started from the first stage's final version, which is its best.
    const second = chain.find((m) => Number(m.extra?.stage) === 1 && m.step === EVERY);
    const firstFinal = chain.find((m) => Number(m.extra?.stage) === 0 && m.extra?.final === true);
    assert.equal(second?.extra?.inputs, firstFinal?.id);
    assert.deepEqual(
      summaryLines(upOutput).map((l) => Number(/at step (\d+),/.exec(l)?.[1])),
      bestSteps,
      upOutput,
    );
  });

  test('train (one process) keeps the same parameters, and prints the same summary', async (t) => {
    if (!upOutput) return t.skip('the up run failed');
    const out = path.join(dir, 'train-out');
    const train = spawnCli('train', ['train', '--config', config, '--out', out, '--backend', testBackend()]);
    procs.push(train);
    assert.equal(await expectExit(train, 300_000), 0, train.output());
    assert.deepEqual(summaryLines(train.output()), summaryLines(upOutput));
    assert.equal(summaryLines(upOutput).length, 2, upOutput);
    const bank = openBank(path.join(dir, 'bank'));
    const chain = await bank.lineage('ee@head');
    for (const [i, stage] of ['first', 'second'].entries()) {
      const trained = loadTrainedState(path.join(out, stage));
      const names = Object.entries(trained.manifest.tensors)
        .filter(([, d]) => d.trainable)
        .map(([k]) => k);
      assert.ok(names.length > 0);
      const final = chain.find((m) => Number(m.extra?.stage) === i && m.extra?.final === true)!;
      const mine = new Map(names.map((k) => [k, trained.tensors.get(k)!.data]));
      const diff = firstDifference(mine, await bankParams(bank, final.id, names));
      assert.equal(diff, undefined, `stage ${stage}: ${diff}`);
      assert.equal(trained.manifest.step, (final.extra?.best as { step?: number } | undefined)?.step);
      t.diagnostic(`stage ${stage}: ${names.length} parameters byte-identical to up's final version`);
    }
  });
});
