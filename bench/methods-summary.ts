/**
 * The methods bench's summary over seeds (bench/methods.ts): per method and task the untrained and trained test
 * scores and the gain as mean and spread, the papers' claims with a verdict each from per-seed paired differences,
 * and ATTEMPT's attention averaged over seeds. Pure: it takes the per-run results and returns data.
 */
import type { BarChartData } from '../src/telemetry/bar-chart-svg.js';
import { HELD_OUT_RUNS, METHOD_LABELS, METHODS, type RunKey, relatedSources } from './methods-jobs.js';
import type { RunResult } from './methods-run.js';
import { pairedDifferences, pairedVerdict, type SeedStat, seedStat, type Verdict } from './methods-stats.js';

export interface TaskCell {
  untrained: SeedStat;
  trained: SeedStat;
  /** trained - untrained, per seed. */
  gain: SeedStat;
  /** Evaluated zero-shot: the run did not train on this task. */
  heldOut: boolean;
}

export interface Claim {
  /** 'a' ATTEMPT(-m) beats PT, 'b' TPT beats PT, 'c' SPT helps on a held-out task. */
  id: 'a' | 'b' | 'c';
  task: string;
  /** "<better> beats <baseline>": run keys, or 'untrained' for the same run before training. */
  better: RunKey;
  baseline: RunKey | 'untrained';
  text: string;
  seeds: number[];
  /** better - baseline on the trained test score, per seed. */
  differences: number[];
  mean: number;
  sd: number | null;
  verdict: Verdict;
}

export interface BenchSummary {
  summary: true;
  seeds: number[];
  tasks: Record<string, { chance: number; majority: number; relatedSources: string[] }>;
  /** method -> task -> cell, for every task the method was scored on. */
  methods: Partial<Record<RunKey, Record<string, TaskCell>>>;
  claims: Claim[];
  /** ATTEMPT(-m) -> target task -> mean attention per candidate, averaged over seeds (each seed: over test). */
  attention: Partial<
    Record<RunKey, Record<string, { candidates: string[]; weights: number[]; perSeed: number[][] }>>
  >;
}

export function taskCells(results: readonly RunResult[], key: RunKey): Record<string, TaskCell> | undefined {
  const runs = results.filter((r) => r.method === key);
  if (runs.length === 0) return undefined;
  const tasks = Object.keys(runs[0]!.trained);
  const out: Record<string, TaskCell> = {};
  for (const t of tasks) {
    const u = runs.map((r) => r.untrained[t]!);
    const tr = runs.map((r) => r.trained[t]!);
    out[t] = {
      untrained: seedStat(u),
      trained: seedStat(tr),
      gain: seedStat(tr.map((v, i) => v - u[i]!)),
      heldOut: runs[0]!.heldOut.includes(t),
    };
  }
  return out;
}

function scoresBySeed(
  results: readonly RunResult[],
  key: RunKey,
  task: string,
  which: 'trained' | 'untrained',
): Map<number, number> {
  const out = new Map<number, number>();
  for (const r of results) {
    const v = r.method === key ? r[which][task] : undefined;
    if (v !== undefined) out.set(r.seed, v);
  }
  return out;
}

function claim(
  results: readonly RunResult[],
  seeds: readonly number[],
  id: Claim['id'],
  task: string,
  better: RunKey,
  baseline: RunKey | 'untrained',
  text: string,
): Claim | undefined {
  const a = scoresBySeed(results, better, task, 'trained');
  const b =
    baseline === 'untrained'
      ? scoresBySeed(results, better, task, 'untrained')
      : scoresBySeed(results, baseline, task, 'trained');
  const paired = pairedDifferences(seeds, a, b);
  if (paired.seeds.length === 0) return undefined;
  const s = seedStat(paired.differences);
  return {
    id,
    task,
    better,
    baseline,
    text,
    seeds: paired.seeds,
    differences: paired.differences,
    mean: s.mean,
    sd: s.sd,
    verdict: pairedVerdict(paired.differences),
  };
}

/**
 * The claims that the runs present allow: (a) ATTEMPT-m and ATTEMPT beat PT and (b) TPT beats PT on each target,
 * (c) on the held-out task, SPT trained on the other targets beats a shared prompt trained on the same targets and
 * beats its own untrained score. A claim whose runs are missing is left out.
 */
export function benchClaims(
  results: readonly RunResult[],
  seeds: readonly number[],
  targets: readonly string[],
  heldOut: string | undefined,
): Claim[] {
  const out: (Claim | undefined)[] = [];
  const related = (t: string) => `related sources: ${relatedSources(t).join(', ') || 'none'}`;
  for (const t of targets) {
    for (const m of ['attempt-m', 'attempt'] as const) {
      out.push(
        claim(results, seeds, 'a', t, m, 'pt', `${METHOD_LABELS[m]} beats PT on ${t} (${related(t)})`),
      );
    }
  }
  for (const t of targets) {
    out.push(claim(results, seeds, 'b', t, 'tpt', 'pt', `TPT beats PT on ${t} (${related(t)})`));
  }
  if (heldOut !== undefined) {
    out.push(
      claim(
        results,
        seeds,
        'c',
        heldOut,
        'spt-held-out',
        'pt-shared-held-out',
        `SPT beats a shared prompt on held-out ${heldOut} (both trained on the other targets, zero-shot here)`,
      ),
      claim(
        results,
        seeds,
        'c',
        heldOut,
        'spt-held-out',
        'untrained',
        `SPT's target training helps held-out ${heldOut} (trained on the other targets vs before that training)`,
      ),
    );
  }
  return out.filter((c): c is Claim => c !== undefined);
}

/** ATTEMPT's per-task attention, averaged over the seeds that have it. */
export function meanAttention(results: readonly RunResult[], key: RunKey): BenchSummary['attention'][RunKey] {
  const runs = results.filter((r) => r.method === key && r.attention);
  if (runs.length === 0) return undefined;
  const out: NonNullable<BenchSummary['attention'][RunKey]> = {};
  for (const task of Object.keys(runs[0]!.attention!)) {
    const rows = runs.map((r) => r.attention![task]!);
    const perSeed = rows.map((r) => r.weights);
    const weights = perSeed[0]!.map((_, j) => perSeed.reduce((a, w) => a + w[j]!, 0) / perSeed.length);
    out[task] = { candidates: rows[0]!.candidates, weights, perSeed };
  }
  return out;
}

export function benchSummary(
  results: readonly RunResult[],
  seeds: readonly number[],
  tasks: BenchSummary['tasks'],
  heldOut: string | undefined,
): BenchSummary {
  const methods: BenchSummary['methods'] = {};
  const attention: BenchSummary['attention'] = {};
  for (const key of [...METHODS, ...HELD_OUT_RUNS]) {
    const cells = taskCells(results, key);
    if (cells) methods[key] = cells;
    const att = meanAttention(results, key);
    if (att) attention[key] = att;
  }
  return {
    summary: true,
    seeds: [...seeds],
    tasks,
    methods,
    claims: benchClaims(results, seeds, Object.keys(tasks), heldOut),
    attention,
  };
}

/** The chart of the table: per target task one bar per compared method (trained mean +- sd, untrained marker). */
export function summaryChartData(summary: BenchSummary): BarChartData {
  const tasks = Object.keys(summary.tasks);
  const keys = METHODS.filter((m) => summary.methods[m]);
  return {
    groups: tasks.map((t) => ({ name: t, reference: summary.tasks[t]!.chance })),
    series: keys.map((m) => ({
      name: METHOD_LABELS[m],
      values: tasks.map((t) => {
        const c = summary.methods[m]![t];
        return c ? { value: c.trained.mean, spread: c.trained.sd, marker: c.untrained.mean } : undefined;
      }),
    })),
  };
}
