/**
 * The README's main job, shortened: `promptmesh up --workers 2` with no config trains the built-in demo suite on
 * the shipped backbone (its own nats-server, coordinator and two worker processes), reports each stage's
 * validation scores, exits 0, and leaves a bank that `bank ls --json` lists with steps and metrics.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { DEMO_TASKS } from '../../src/data/demo/index.js';
import { natsSkipReason } from '../helpers/nats.js';
import { type CliProcess, expectExit, killAll, spawnCli } from '../helpers/runtime-fixture.js';

describe('up: the demo job', { skip: natsSkipReason() }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-up-'));
  const procs: CliProcess[] = [];
  after(async () => {
    await killAll(procs);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('2 workers, --steps 4: both stages run, scores are printed, exit 0, bank ls --json lists the versions', async () => {
    const bank = path.join(dir, 'bank');
    const up = spawnCli('up', ['up', '--workers', '2', '--steps', '4', '--bank', bank, '--backend', 'wasm'], {
      NATS_URL: '',
    });
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
    assert.ok(versions.length >= 2, ls.output());
    for (const v of versions) assert.equal(v.step, 4);
    const head = versions.find((v) => v.head);
    assert.ok(head, 'no head version');
    for (const t of DEMO_TASKS.filter((d) => d.role === 'target')) {
      const score = head.metrics[t.name];
      assert.ok(score !== undefined && score >= 0 && score <= 100, `${t.name}: ${score}`);
    }
  });
});
