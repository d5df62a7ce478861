/**
 * One training step everywhere, bit-identical at any world size: the shipped demo job (ATTEMPT's two stages,
 * prompt tuning on the source tasks then ATTEMPT-m on the targets, on the shipped backbone, with its dropout and
 * learning rates 0.3 / 0.05), shortened to STEPS steps per stage, ends with the same bytes whether it runs in one
 * process (`promptmesh train`) or as a distributed job (`promptmesh up --workers 1`, `2` and `3`: real coordinator
 * and worker processes over a real nats-server).
 *
 * Before the exact reduction (train/step-plan.ts), 1 and 2 workers differed by 1.4e-4 (relative L2) after stage 1
 * and by up to 1.1e-1 in stage 2: float32 summation order in the gradient all-reduce, amplified by AdamW at
 * learning rate 0.3 (dividing by sqrt(v) turns an ulp in a near-zero gradient into a step of the learning rate's
 * size). Now every bank tensor (parameters, AdamW moments, the stage inputs) has the same digest in all three runs,
 * and the parameters equal `train`'s byte for byte. Recovery (a worker killed and its step redone) is held to the
 * same standard in recovery.test.ts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import type { Manifest } from '../../src/bank/index.js';
import { demoJob } from '../../src/config/demo-job.js';
import { JOB_ATTACHMENT, parseJobConfig } from '../../src/config/job-config.js';
import { type BackboneIdentity, backboneIdentity } from '../../src/model/checkpoint/identity.js';
import { readT5Config } from '../../src/model/checkpoint/index.js';
import {
  type EvalRecord,
  HISTORY_ATTACHMENT,
  type HistoryRecord,
  parseHistory,
  readBankHistory,
  type StepRecord,
} from '../../src/train/history.js';
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

/** Steps per stage: the shipped job runs 60; 10 keep the warm-up (2 steps) and the decay, in CI time. */
const STEPS = 10;

describe('runtime: the demo job ends with the same bytes in 1 process and on 1, 2, 3 workers', {
  skip: natsSkipReason(),
}, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-equiv-'));
  const procs: CliProcess[] = [];
  const job = demoJob({ steps: STEPS });
  /** The bank's final version of each stage, per world size. */
  const finals = new Map<number, Manifest[]>();
  after(async () => {
    await killAll(procs);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the shipped demo job trains both stages with dropout', () => {
    const rate = readT5Config(job.backbone.checkpoint).dropoutRate;
    assert.deepEqual(
      job.stages.map((s) => s.method.name),
      ['prompt-tuning', 'attempt'],
    );
    for (const s of job.stages)
      assert.ok((s.train.dropout ?? rate) > 0, `stage ${s.name} trains without dropout`);
  });

  for (const n of [1, 2, 3]) {
    test(`up --workers ${n}: both stages complete`, async () => {
      const bank = path.join(dir, `bank-${n}`);
      const up = spawnCli(
        `up-${n}`,
        ['up', '--workers', String(n), '--steps', String(STEPS), '--bank', bank, '--backend', testBackend()],
        { NATS_URL: '' },
      );
      procs.push(up);
      assert.equal(await expectExit(up, 300_000), 0, up.output());
      // Every worker is a member of each stage's generation from its step 0 (ranks follow join order).
      const gens = [...up.output().matchAll(/generation \d+ \([^)]*\): (.*) from step 0/g)];
      assert.ok(gens.length >= 2, up.output());
      for (const g of gens) assert.equal(g[1]!.split(', ').length, n, g[0]);
      // It ends with each stage's untrained -> trained scores and where the versions are.
      const last = up.output().trimEnd().split('\n').slice(-3);
      const tail = up.output().trimEnd().split('\n').slice(-12).join('\n');
      assert.match(
        last[0]!,
        /stage 'sources' \(validation, label scoring\): .* \(untrained -> trained at step \d+\)$/,
        tail,
      );
      assert.match(
        last[1]!,
        /stage 'targets' \(validation, label scoring\): .* \(untrained -> trained at step \d+\)$/,
        tail,
      );
      assert.match(last[2]!, /job complete; versions: /, tail);
      const b = openBank(bank);
      finals.set(n, [await b.get(`demo.${job.stages[0]!.name}`), await b.get('demo@head')]);
    });
  }

  test('every bank tensor has the same digest at 1, 2 and 3 workers', (t) => {
    const one = finals.get(1);
    if (!one || finals.size < 3) return t.skip('a run above failed');
    for (const n of [2, 3]) {
      for (const [i, m] of finals.get(n)!.entries()) {
        const want: Manifest = one[i]!;
        assert.equal(m.step, STEPS);
        assert.deepEqual(
          Object.keys(m.tensors).sort(),
          Object.keys(want.tensors).sort(),
          `stage ${i}: tensor names`,
        );
        for (const [name, tensor] of Object.entries(m.tensors)) {
          assert.equal(tensor.digest, want.tensors[name]!.digest, `${n} workers, stage ${i}: '${name}'`);
        }
        t.diagnostic(
          `${n} workers, stage ${i}: ${Object.keys(m.tensors).length} tensors, digests equal to 1 worker's`,
        );
      }
    }
  });

  test('`train` (one process) ends with the same parameter bytes', async (t) => {
    const one = finals.get(1);
    if (!one) return t.skip('the 1-worker run failed');
    const out = path.join(dir, 'train-out');
    const train = spawnCli('train', [
      'train',
      '--steps',
      String(STEPS),
      '--out',
      out,
      '--backend',
      testBackend(),
    ]);
    procs.push(train);
    assert.equal(await expectExit(train, 300_000), 0, train.output());
    for (const stage of job.stages)
      assert.match(
        train.output(),
        new RegExp(
          `\\nstage '${stage.name}' \\(validation, label scoring\\): .* \\(untrained -> trained at step \\d+\\)\\n`,
        ),
      );
    const bank = openBank(path.join(dir, 'bank-1'));
    for (const [i, stage] of job.stages.entries()) {
      const trained = loadTrainedState(path.join(out, stage.name));
      const names = Object.entries(trained.manifest.tensors)
        .filter(([, d]) => d.trainable)
        .map(([k]) => k);
      assert.ok(names.length > 0);
      const mine = new Map(names.map((k) => [k, trained.tensors.get(k)!.data]));
      const diff = firstDifference(mine, await bankParams(bank, one[i]!.id, names));
      t.diagnostic(
        `stage ${stage.name}: ${diff ?? `${names.length} parameters byte-identical to up --workers 1`}`,
      );
      assert.equal(diff, undefined, `stage ${stage.name}: ${diff}`);
    }
  });

  test("the versions carry the run history, the resolved job and the backbone digests; history equals train's", async (t) => {
    if (finals.size < 3 || !fs.existsSync(path.join(dir, 'train-out'))) return t.skip('a run above failed');
    const histories = new Map<number, HistoryRecord[]>();
    for (const n of [1, 2, 3]) {
      const bank = openBank(path.join(dir, `bank-${n}`));
      const { records } = await readBankHistory(bank, 'demo');
      histories.set(n, records);
      const head = await bank.get('demo@head');
      const resolved = parseJobConfig(
        JSON.parse(new TextDecoder().decode((await bank.attachment(head.id, JOB_ATTACHMENT))!)),
      );
      assert.deepEqual(resolved, job, `${n} workers: job.json is the job that ran`);
      const identity = head.extra?.backbone as BackboneIdentity;
      assert.deepEqual(identity, await backboneIdentity(job.backbone.checkpoint));
      assert.match(identity.files['model.safetensors']!, /^sha256:[0-9a-f]{64}$/);
    }
    const one = histories.get(1)!;
    for (const stage of job.stages) {
      const steps = one.filter((r) => r.kind === 'step' && r.stage === stage.name) as StepRecord[];
      assert.deepEqual(
        steps.map((r) => r.step),
        Array.from({ length: STEPS }, (_, i) => i + 1),
        `stage ${stage.name}: one record per committed step, in order`,
      );
      assert.ok(steps.every((r) => r.gradNorm > 0 && Object.keys(r.lr).length > 0));
      const evals = one.filter((r) => r.kind === 'eval' && r.stage === stage.name);
      assert.deepEqual(
        evals.map((r) => r.step),
        [0, STEPS],
        `stage ${stage.name}: the untrained prompt's evaluation (evalAtStart), then the final one`,
      );
      // train --out: the same steps with the same loss, gradient norm and learning rates, to the bit.
      const file = path.join(dir, 'train-out', stage.name, HISTORY_ATTACHMENT);
      const mine = parseHistory(fs.readFileSync(file, 'utf8'), file).filter(
        (r) => r.kind === 'step',
      ) as StepRecord[];
      for (const n of [1, 2, 3]) {
        const theirs = histories
          .get(n)!
          .filter((r) => r.kind === 'step' && r.stage === stage.name) as StepRecord[];
        const key = (r: StepRecord) => [r.step, r.loss, r.gradNorm, r.lr];
        assert.deepEqual(theirs.map(key), mine.map(key), `${n} workers, stage ${stage.name} vs train`);
        // The step-0 scores, whoever is rank 0 and whenever it scores them, are train's.
        const scores = (records: HistoryRecord[]) =>
          records
            .filter((r) => r.kind === 'eval' && r.stage === stage.name)
            .map((r) => [r.step, (r as EvalRecord).scores]);
        assert.deepEqual(
          scores(histories.get(n)!)[0],
          scores(parseHistory(fs.readFileSync(file, 'utf8'), file))[0],
          `${n} workers, stage ${stage.name}: step-0 scores vs train`,
        );
      }
    }
    t.diagnostic(
      `${one.length} history records per run, equal loss, gradient norm and lr at 1, 2, 3 workers and in train`,
    );
  });
});
