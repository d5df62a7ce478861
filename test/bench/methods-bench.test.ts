/**
 * The methods bench (bench/methods.ts) run in-process with tiny settings on the shipped demo backbone: 2 steps per
 * stage, 2 seeds, 10 validation and 20 test examples per task, label scoring. It checks the shape and the
 * arithmetic of what it reports (the JSON lines, the summary, the chart), not what the methods reach.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../bench/methods.js';
import { HELD_OUT_RUNS, METHODS, type RunKey, SOURCES, TARGETS } from '../../bench/methods-jobs.js';
import { VERDICTS } from '../../bench/methods-stats.js';
import type { BenchSummary, TaskCell } from '../../bench/methods-summary.js';
import { testBackend } from '../helpers/backend.js';

/** Runs main with console.log collected (the bench prints its JSON lines there). */
async function runMain(argv: string[]) {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => lines.push(args.map(String).join(' '));
  try {
    return { summary: await main(argv), lines };
  } finally {
    console.log = log;
  }
}

test('methods bench: wrong arguments are refused before anything trains', async () => {
  await assert.rejects(main(['--seed', '1', '--seeds', '1,2']), /--seeds or --seed/);
  await assert.rejects(main(['--seeds', '1,x']), /--seeds/);
  await assert.rejects(main(['--seeds', '3,3']), /repeats/);
  await assert.rejects(main(['--methods', 'pt,attempt-x']), /unknown method 'attempt-x'/);
  await assert.rejects(main(['--held-out', 'demo-nli']), /--held-out/);
});

test('methods bench: every method x seed, mean and spread per task, claims, attention, chart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-methods-'));
  const svgPath = join(dir, 'methods.svg');
  const jsonPath = join(dir, 'methods.jsonl');
  const seeds = [1, 2];
  try {
    const { summary, lines } = await runMain([
      ...['--steps', '2', '--seeds', seeds.join(','), '--eval-examples', '10', '--test-examples', '20'],
      ...['--eval-mode', 'rank', '--backend', testBackend(), '--json', '--quiet', '--svg', svgPath],
      ...['--json-file', jsonPath],
    ]);
    assert.ok(summary);
    const objects = lines.map((l) => JSON.parse(l));
    // --json-file holds the lines --json prints.
    assert.deepEqual(readFileSync(jsonPath, 'utf8').trimEnd().split('\n'), lines);
    const runKeys = [...METHODS, ...HELD_OUT_RUNS];
    // One JSON object per (method, seed), then the summary.
    assert.equal(objects.length, runKeys.length * seeds.length + 1);
    const runs = objects.slice(0, -1);
    const printed = objects.at(-1);
    assert.equal(printed.summary, true);
    assert.deepEqual(
      runs.map((r) => `${r.method}@${r.seed}`).sort(),
      seeds.flatMap((s) => runKeys.map((k) => `${k}@${s}`)).sort(),
    );
    assert.deepEqual(printed.methods, JSON.parse(JSON.stringify(summary.methods)));
    // Identical source stages train once per seed: ATTEMPT-m reuses ATTEMPT's source prompts, the held-out SPT
    // run the SPT memory.
    for (const s of seeds) {
      const reused = (key: string) => runs.find((r) => r.method === key && r.seed === s)!.reusedStages;
      assert.deepEqual(reused('attempt'), []);
      assert.deepEqual(reused('attempt-m'), ['sources']);
      assert.deepEqual(reused('spt'), []);
      assert.deepEqual(reused('spt-held-out'), ['memory']);
    }
    assert.deepEqual(summary.seeds, seeds);

    for (const t of TARGETS) {
      const info = summary.tasks[t]!;
      assert.ok(info.chance > 0 && info.chance <= 50, `${t} chance ${info.chance}`);
      assert.ok(info.majority >= info.chance - 1e-9 || t === 'demo-count', `${t} majority ${info.majority}`);
      assert.ok(info.relatedSources.length > 0 && info.relatedSources.every((s) => SOURCES.includes(s)));
    }
    for (const key of runKeys) {
      const cells: BenchSummary['methods'][RunKey] = summary.methods[key];
      assert.ok(cells, `no summary for ${key}`);
      assert.deepEqual(Object.keys(cells).sort(), [...TARGETS].sort(), key);
      for (const t of TARGETS) {
        const c: TaskCell = cells[t]!;
        const perSeed = seeds.map((s) => runs.find((r) => r.method === key && r.seed === s)!);
        assert.deepEqual(
          c.trained.values,
          perSeed.map((r) => r.trained[t]),
        );
        assert.deepEqual(
          c.untrained.values,
          perSeed.map((r) => r.untrained[t]),
        );
        for (const s of [c.untrained, c.trained, c.gain]) {
          assert.equal(s.n, seeds.length);
          assert.ok(s.sd !== null && s.sd >= 0, `${key} ${t} sd ${s.sd}`);
          assert.ok(s.min <= s.mean + 1e-9 && s.mean <= s.max + 1e-9);
        }
        assert.ok(Math.abs(c.gain.mean - (c.trained.mean - c.untrained.mean)) < 1e-9);
        // Only the held-out runs have a zero-shot task, and it is the default held-out task.
        assert.equal(c.heldOut, key.endsWith('held-out') && t === 'demo-dining', `${key} ${t}`);
      }
    }

    // Claims: (a) ATTEMPT-m and ATTEMPT vs PT and (b) TPT vs PT on every target, (c) two on the held-out task;
    // each difference is the per-seed difference of the runs' trained scores.
    assert.deepEqual(
      summary.claims.map((c) => c.id),
      [...TARGETS.flatMap(() => ['a', 'a']), ...TARGETS.map(() => 'b'), 'c', 'c'],
    );
    for (const c of summary.claims) {
      assert.ok((VERDICTS as readonly string[]).includes(c.verdict), c.verdict);
      assert.deepEqual(c.seeds, seeds);
      const score = (key: string, s: number, which: 'trained' | 'untrained') =>
        runs.find((r) => r.method === key && r.seed === s)![which][c.task];
      const expected = seeds.map(
        (s) =>
          score(c.better, s, 'trained') -
          (c.baseline === 'untrained' ? score(c.better, s, 'untrained') : score(c.baseline, s, 'trained')),
      );
      assert.deepEqual(c.differences, expected, c.text);
    }

    // ATTEMPT's attention: per target, one weight per source prompt and one for the target prompt, summing to 1.
    for (const key of ['attempt', 'attempt-m'] as const) {
      const att: BenchSummary['attention'][RunKey] = summary.attention[key];
      assert.ok(att, `no attention for ${key}`);
      assert.deepEqual(Object.keys(att).sort(), [...TARGETS].sort());
      for (const t of TARGETS) {
        assert.deepEqual(att[t]!.candidates, [...SOURCES, 'target']);
        assert.equal(att[t]!.perSeed.length, seeds.length);
        const sum = att[t]!.weights.reduce((a, w) => a + w, 0);
        assert.ok(Math.abs(sum - 1) < 1e-4, `${key} ${t} attention sums to ${sum}`);
      }
    }
    assert.equal(summary.attention.pt, undefined);

    // The chart: one bar per method x target task.
    const svg = readFileSync(svgPath, 'utf8');
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\n$/);
    assert.equal(svg.match(/class="bar"/g)?.length, METHODS.length * TARGETS.length);
    assert.match(svg, /seeds 1,2/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
