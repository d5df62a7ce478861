/**
 * The README's main job, shortened: `promptmesh up --workers 2` with no config trains the built-in demo suite on
 * the shipped backbone (its own nats-server, coordinator and two worker processes), reports each stage's
 * validation scores, ends with each stage's untrained -> trained scores per task (the demo job's `evalAtStart`),
 * exits 0, and leaves a bank that `bank ls --json` lists with steps and metrics, whose run history has the step-0
 * evaluation in each stage's first version.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { demoJob } from '../../src/config/demo-job.js';
import { DEMO_TASKS } from '../../src/data/demo/index.js';
import {
  type EvalRecord,
  HISTORY_ATTACHMENT,
  parseHistory,
  readBankHistory,
  stageScoreSummary,
} from '../../src/train/history.js';
import { natsSkipReason } from '../helpers/nats.js';
import { type CliProcess, expectExit, killAll, openBank, spawnCli } from '../helpers/runtime-fixture.js';

describe('up: the demo job', { skip: natsSkipReason() }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-up-'));
  const procs: CliProcess[] = [];
  after(async () => {
    await killAll(procs);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('2 workers, --steps 4: both stages run, scores are printed, untrained -> trained last, exit 0, bank ls --json lists the versions', async () => {
    const bank = path.join(dir, 'bank');
    // A version every 2 steps: each stage's first version (step 2) is not its final one (step 4).
    const up = spawnCli(
      'up',
      [
        'up',
        '--workers',
        '2',
        '--steps',
        '4',
        '--checkpoint-every',
        '2',
        '--bank',
        bank,
        '--backend',
        'wasm',
      ],
      { NATS_URL: '' },
    );
    procs.push(up);
    assert.equal(await expectExit(up, 120_000), 0, up.output());
    const out = up.output();
    assert.match(out, /generation \d+ \([^)]*\): \S+, \S+ from step 0/, 'both workers in one generation');
    const finals = [
      ...out.matchAll(/committed at stage (\d) step 4 \(stage final\): (validationAverage=\S+ .*)/g),
    ];
    assert.deepEqual(
      finals.map((m) => m[1]),
      ['0', '1'],
      out,
    );
    // Each stage's line names every task of that stage with its score.
    for (const [stage, role] of [
      [0, 'source'],
      [1, 'target'],
    ] as const) {
      for (const t of DEMO_TASKS.filter((d) => d.role === role)) {
        assert.match(finals[stage]![2]!, new RegExp(`${t.name}=\\d+`), `stage ${stage} line lacks ${t.name}`);
      }
    }
    assert.match(out, /job complete/);
    // Rank 0 scored the untrained prompts of each stage.
    assert.equal([...out.matchAll(/eval @ step 0 \(untrained\): average \d+\.\d\d \| /g)].length, 2, out);
    // The last lines: each stage's untrained -> trained scores, then where the versions are.
    const last = out.trimEnd().split('\n').slice(-3);
    const job = demoJob({ steps: 4 });
    for (const [i, stage] of job.stages.entries()) {
      const pairs = stage.tasks.map((t) => `${t} \\d+\\.\\d -> \\d+\\.\\d`).join(', ');
      assert.match(
        last[i]!,
        new RegExp(
          `stage '${stage.name}' \\(validation, label scoring\\): ${pairs} \\(untrained -> trained at step 4\\)$`,
        ),
        out,
      );
    }
    assert.match(last[2]!, /job complete; versions: promptmesh bank ls --bank /, out);

    // The run history in the bank: the step-0 evaluation is carried by each stage's first version, the final one
    // by its last, and the lines above are made of these records.
    const b = openBank(bank);
    const { records } = await readBankHistory(b, 'demo');
    const evals = records.filter((r): r is EvalRecord => r.kind === 'eval');
    assert.deepEqual(
      evals.map((r) => [r.stage, r.step]),
      job.stages.flatMap((st) => [
        [st.name, 0],
        [st.name, 4],
      ]),
    );
    for (const stage of job.stages) {
      const lineage = await b.lineage(`demo.${stage.name}`);
      const [final, first] = lineage;
      assert.equal(first!.step, 2);
      const carried = parseHistory(
        new TextDecoder().decode((await b.attachment(first!.id, HISTORY_ATTACHMENT))!),
        'first version',
      ).filter((r) => r.kind === 'eval');
      assert.deepEqual(
        carried.map((r) => [r.stage, r.step]),
        [[stage.name, 0]],
      );
      assert.deepEqual(Object.keys(carried[0]!.scores), stage.tasks);
      assert.equal(final!.step, 4);
    }
    assert.deepEqual(
      last.slice(0, 2).map((l) => l.slice(l.indexOf('stage '))),
      stageScoreSummary(records, job.stages),
    );
    await b.close();
    // Fewer CPUs than processes: the workers run with a single-threaded garbage collector, and `up` says so.
    assert.match(
      out,
      os.availableParallelism() < 3
        ? /\[up\] 2 workers and the coordinator on \d+ CPUs: workers run with --single-threaded-gc/
        : /\[up\] 2 workers on \d+ CPUs: default garbage collector/,
    );

    const ls = spawnCli('bank ls', ['bank', 'ls', '--bank', bank, '--json']);
    procs.push(ls);
    assert.equal(await expectExit(ls, 30_000), 0, ls.output());
    const versions = JSON.parse(ls.output()) as {
      step: number;
      head?: boolean;
      metrics: Record<string, number>;
    }[];
    assert.ok(versions.length >= 4, ls.output());
    for (const v of versions) assert.ok(v.step === 2 || v.step === 4, `version at step ${v.step}`);
    const head = versions.find((v) => v.head);
    assert.ok(head, 'no head version');
    for (const t of DEMO_TASKS.filter((d) => d.role === 'target')) {
      const score = head.metrics[t.name];
      assert.ok(score !== undefined && score >= 0 && score <= 100, `${t.name}: ${score}`);
    }
  });
});
