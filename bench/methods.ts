/**
 * Do the methods learn, and do the papers' claims hold here? Trains prompt tuning (PT), ATTEMPT (single-task: one
 * target stage per target task), ATTEMPT-m (multi-task), TPT and SPT on the demo suite's TARGET tasks with the
 * frozen demo backbone, once per seed (the seed drives initialisation, data order and dropout), and reports per
 * method and target task the TEST score of the untrained method (its initial parameters, after any source stage,
 * before its target stage trains) and of the trained one (the best validation step), as mean ± sample standard
 * deviation over seeds (min..max in the JSON), the gain, chance (chanceLevel) and the majority-label baseline.
 *
 *   npm run bench -- methods [--steps 300] [--seeds 42,7,1234] [--methods pt,attempt,attempt-m,tpt,spt]
 *                            [--held-out demo-dining|none] [--eval-mode generate|rank] [--json] [--json-file FILE]
 *                            [--svg FILE]   (--help lists the rest)
 *
 * Claims, each with a verdict from the per-seed paired differences (methods-stats.ts pairedVerdict):
 *   (a) ATTEMPT-m and ATTEMPT beat PT on each target; (b) TPT beats PT on each target;
 *   (c) SPT helps on a held-out task: SPT's target stage trains on the other two targets and is scored zero-shot
 *       on the held-out one, against a shared prompt (prompt tuning, one prompt for all tasks) trained on the same
 *       two, and against SPT's own untrained score there.
 * ATTEMPT's attention read-out: per target task, the mean attention weight on each source prompt and on the
 * target prompt over the test examples (the method's own `inspect`, as `promptmesh method run` prints it),
 * averaged over seeds.
 *
 * Defaults (300 steps, prompt lr 0.1) are what docs/methods.md's tables used: at 150 steps the gains on the demo
 * targets were smaller and less stable across seeds, and the papers' 0.3 overshoots on this tiny backbone.
 *
 * `--eval-mode` is how validation (step selection) and the test scores predict a label (see EvalMode): 'generate',
 * the job default and the papers' way, or 'rank' (label scoring).
 *
 * Budget: every method gets the same target stage (same steps, batch, prompt learning rate, validation); single-task
 * ATTEMPT gets one such stage per target with a third of the batch, so each target prompt sees the same examples
 * and updates as under PT. ATTEMPT, TPT and SPT also get a source stage of the same number of steps over the six
 * source tasks, because that is what they are (transfer from sources): source prompts by prompt tuning (trained once
 * per seed and shared by ATTEMPT and ATTEMPT-m), TPT's token bank, SPT's memory (see docs/methods.md).
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { selectBackend } from '../src/backend/index.js';
import { demoBackboneDir } from '../src/config/paths.js';
import { chanceLevel, generateDemoSuite, majorityBaseline } from '../src/data/demo/index.js';
import { loadT5Model } from '../src/model/load-t5.js';
import { loadTokenizer } from '../src/model/tokenizer/index.js';
import { barChartSvg } from '../src/telemetry/bar-chart-svg.js';
import { EVAL_MODES, type EvalMode } from '../src/train/evaluate.js';
import { formatDuration, type ProgressSink } from '../src/train/progress.js';
import {
  type Budget,
  benchRun,
  HELD_OUT_RUNS,
  METHOD_LABELS,
  METHODS,
  type MethodKey,
  type RunKey,
  relatedSources,
  TARGETS,
} from './methods-jobs.js';
import { type RunResult, runBenchJob, type StageCache } from './methods-run.js';
import { formatStat } from './methods-stats.js';
import { type BenchSummary, benchSummary, summaryChartData } from './methods-summary.js';

export const DEFAULT_SEEDS = [42, 7, 1234] as const;
export const DEFAULT_HELD_OUT = 'demo-dining';

const USAGE =
  'npm run bench -- methods [--steps 300] [--seeds 42,7,1234 | --seed N] [--methods pt,attempt,attempt-m,tpt,spt]\n' +
  '                         [--held-out demo-dining|demo-entail|demo-count|none] [--lr 0.1] [--prompt-length 10]\n' +
  '                         [--eval-examples 100] [--test-examples 0 (all)] [--eval-mode generate|rank]\n' +
  "                         [--dropout RATE (default: the checkpoint's)] [--backbone DIR] [--backend wasm]\n" +
  '                         [--json] [--json-file FILE] [--svg FILE] [--quiet]\n' +
  '  --seeds: every method runs once per seed (init, data order, dropout); --seed N is one seed.\n' +
  "  --held-out: claim (c)'s task (runs when --methods has spt): SPT and a shared prompt train on the other targets.\n" +
  '  --eval-examples: validation examples per task for step selection; --test-examples: test examples scored.\n' +
  '  --json: print one JSON object per (method, seed), then one summary object, instead of the table;\n' +
  '  --json-file: write those lines to FILE too (beside the table); --svg: write a bar chart of the table.';

const quietProgress = (enabled: boolean): ProgressSink => ({
  update: () => {},
  log: (line) => {
    if (enabled) process.stderr.write(`${line}\n`);
  },
  done: () => {},
});

function parseSeeds(seeds: string | undefined, seed: string | undefined): number[] {
  if (seeds !== undefined && seed !== undefined) throw new Error('give --seeds or --seed, not both');
  const list = seed ?? seeds ?? DEFAULT_SEEDS.join(',');
  const out = list.split(',').map((s) => Number(s.trim()));
  if (out.length === 0 || out.some((s) => !Number.isInteger(s))) {
    throw new Error(`--seeds: integers separated by commas, got '${list}'`);
  }
  if (new Set(out).size !== out.length) throw new Error(`--seeds: '${list}' repeats a seed`);
  return out;
}

/** Runs the bench; prints the table (or JSON lines), writes the chart, and returns the summary. */
export async function main(argv: string[]): Promise<BenchSummary | undefined> {
  const { values } = parseArgs({
    args: argv,
    options: {
      steps: { type: 'string', default: '300' },
      methods: { type: 'string', default: METHODS.join(',') },
      lr: { type: 'string', default: '0.1' },
      'prompt-length': { type: 'string', default: '10' },
      'eval-examples': { type: 'string', default: '100' },
      'test-examples': { type: 'string', default: '0' },
      'eval-mode': { type: 'string', default: 'generate' },
      seeds: { type: 'string' },
      seed: { type: 'string' },
      'held-out': { type: 'string', default: DEFAULT_HELD_OUT },
      dropout: { type: 'string' },
      backbone: { type: 'string' },
      backend: { type: 'string', default: 'wasm' },
      json: { type: 'boolean', default: false },
      svg: { type: 'string' },
      'json-file': { type: 'string' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return undefined;
  }
  const keys = values.methods.split(',').map((m) => m.trim());
  for (const k of keys) {
    if (!(METHODS as readonly string[]).includes(k))
      throw new Error(`--methods: unknown method '${k}'; known: ${METHODS.join(', ')}`);
  }
  const evalMode = values['eval-mode'] as EvalMode;
  if (!EVAL_MODES.includes(evalMode)) {
    throw new Error(`--eval-mode: unknown mode '${evalMode}'; known: ${EVAL_MODES.join(', ')}`);
  }
  const heldOutArg = values['held-out'];
  if (heldOutArg !== 'none' && !TARGETS.includes(heldOutArg)) {
    throw new Error(`--held-out: one of ${TARGETS.join(', ')} or none, got '${heldOutArg}'`);
  }
  const heldOut = heldOutArg !== 'none' && keys.includes('spt') ? heldOutArg : undefined;
  const seeds = parseSeeds(values.seeds, values.seed);
  const budget: Budget = {
    steps: Number.parseInt(values.steps, 10),
    batchSize: 32,
    lr: Number(values.lr),
    promptLength: Number.parseInt(values['prompt-length'], 10),
    evalExamples: Number.parseInt(values['eval-examples'], 10),
    evalMode,
    dropout: values.dropout === undefined ? null : Number(values.dropout),
  };
  const testExamples = Number.parseInt(values['test-examples'], 10);
  if (!(testExamples >= 0))
    throw new Error(`--test-examples: 0 (all) or more, got '${values['test-examples']}'`);
  await selectBackend({ requested: values.backend, log: () => {} });
  const backbone = values.backbone ?? demoBackboneDir();
  const tokenizer = await loadTokenizer(backbone);
  const model = loadT5Model(backbone).model;
  const suite = generateDemoSuite({ tasks: TARGETS });
  const tasks: BenchSummary['tasks'] = {};
  for (const t of suite.tasks) {
    const test = testExamples > 0 ? t.test.slice(0, testExamples) : t.test;
    tasks[t.def.name] = {
      chance: chanceLevel(t.def.name, test),
      majority: majorityBaseline(test),
      relatedSources: relatedSources(t.def.name),
    };
  }
  const runKeys: RunKey[] = [...(keys as MethodKey[]), ...(heldOut ? HELD_OUT_RUNS : [])];
  const progress = quietProgress(!values.quiet && !values.json);
  const results: RunResult[] = [];
  const jsonFile = values['json-file'];
  if (jsonFile) writeFileSync(jsonFile, '');
  const emit = (line: string) => {
    if (values.json) console.log(line);
    if (jsonFile) appendFileSync(jsonFile, `${line}\n`);
  };
  try {
    for (const seed of seeds) {
      // Identical source stages (ATTEMPT's and ATTEMPT-m's source prompts, SPT's memory) train once per seed.
      const cache: StageCache = new Map();
      for (const key of runKeys) {
        const run = benchRun(key, backbone, budget, seed, heldOut);
        const r = runBenchJob(run, model, tokenizer, { testExamples, progress, cache });
        results.push(r);
        emit(JSON.stringify({ ...r, tasks, budget, testExamples }));
        progress.log(`${key} seed ${seed}: done in ${formatDuration(r.trainSeconds)}`);
      }
    }
  } finally {
    model.dispose();
  }
  const summary = benchSummary(results, seeds, tasks, heldOut);
  const settings =
    `${budget.steps} steps per stage, batch ${budget.batchSize}, prompt lr ${budget.lr}, prompt length ` +
    `${budget.promptLength}, seeds ${seeds.join(',')}, labels by ${evalMode === 'rank' ? 'label scoring' : 'generation'} ` +
    `(--eval-mode ${evalMode}), ${testExamples > 0 ? `${testExamples}` : 'all'} test examples per task`;
  if (values.svg) {
    writeFileSync(
      values.svg,
      barChartSvg(summaryChartData(summary), {
        title:
          `Trained test score per target task: ${budget.steps} steps, seeds ${seeds.join(',')}, ` +
          `${evalMode === 'rank' ? 'label scoring' : 'generation'}`,
        subtitle: `${settings.replace(', seeds', ',\nseeds')}; backbone ${basename(backbone)}`,
        yLabel: 'test accuracy (%)',
        xLabel: 'target task',
        spreadLabel: `± sample sd over ${seeds.length} seed${seeds.length > 1 ? 's' : ''}`,
        markerLabel: 'untrained (mean)',
        referenceLabel: 'chance',
      }),
    );
  }
  emit(JSON.stringify({ ...summary, budget, testExamples, backbone }));
  if (!values.json) printTable(summary, settings, evalMode, results);
  return summary;
}

function printTable(summary: BenchSummary, settings: string, evalMode: EvalMode, results: RunResult[]): void {
  const col = (s: string, w: number) => s.padEnd(w);
  console.log(`test accuracy (%), mean ± sample sd over seeds; ${settings}`);
  for (const [task, info] of Object.entries(summary.tasks)) {
    console.log(
      `\n${task}: chance ${info.chance.toFixed(1)}, majority label ${info.majority.toFixed(1)}, related sources ${info.relatedSources.join(', ')}`,
    );
    console.log(
      `  ${col('method', 32)}${col('untrained', 16)}${col('trained', 16)}${col('gain', 16)}${evalMode === 'generate' ? 'invalid (untrained/trained, mean)' : ''}`,
    );
    for (const [key, cells] of Object.entries(summary.methods) as [
      RunKey,
      BenchSummary['methods'][RunKey],
    ][]) {
      const c = cells?.[task];
      if (!c) continue;
      const runs = results.filter((r) => r.method === key);
      const inv = (which: 'invalidUntrained' | 'invalidTrained') =>
        (runs.reduce((a, r) => a + (r[which][task] ?? 0), 0) / runs.length).toFixed(0);
      const label = `${METHOD_LABELS[key]}${c.heldOut ? ' (zero-shot)' : ''}`;
      console.log(
        `  ${col(label, 32)}${col(formatStat(c.untrained), 16)}${col(formatStat(c.trained), 16)}${col(formatStat(c.gain, true), 16)}${evalMode === 'generate' ? `${inv('invalidUntrained')}/${inv('invalidTrained')}` : ''}`,
      );
    }
  }
  console.log('\nclaims (per-seed paired differences of the trained test score, better - baseline):');
  for (const c of summary.claims) {
    const diff = formatStat({ mean: c.mean, sd: c.sd }, true);
    console.log(`  (${c.id}) ${c.text}: ${diff} over seeds ${c.seeds.join(',')} -> ${c.verdict}`);
  }
  for (const [key, byTask] of Object.entries(summary.attention)) {
    if (!byTask) continue;
    const first = Object.values(byTask)[0];
    if (!first) continue;
    console.log(
      `\n${METHOD_LABELS[key as RunKey]} attention (mean over test examples, then over seeds): target task x candidate prompt`,
    );
    console.log(`  ${col('target', 14)}${first.candidates.map((c) => col(c, 17)).join('')}`);
    for (const [task, a] of Object.entries(byTask)) {
      // The source with the most attention ('target', the task's own prompt, is not a source).
      const sources = a.candidates.map((c, j) => [c, a.weights[j]!] as const).filter(([c]) => c !== 'target');
      const top = sources.reduce((b, x) => (x[1] > b[1] ? x : b), sources[0]!);
      console.log(
        `  ${col(task, 14)}${a.weights.map((w) => col(w.toFixed(3), 17)).join('')}most attended source: ${top[0]}`,
      );
    }
  }
  console.log(
    '\ncells: untrained (initial parameters, after any source stage) and trained (best validation step) test scores;' +
      ' gain = trained - untrained per seed; verdicts: holds when the mean paired difference exceeds its sd,' +
      ' does not hold when it is at most -sd, otherwise inconclusive',
  );
}
