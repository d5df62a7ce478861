/**
 * The Grafana dashboard queries only metrics the code registers: every identifier in every PromQL expression is a
 * PromQL word, a series of the metric definitions table, a default Node/process metric of a real registry, or a
 * DCGM exporter metric (allowed by prefix: those come from NVIDIA's exporter, not from us). promtool parses every
 * expression as a recording rule, so a query Prometheus would reject fails here too.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import {
  createProcessRegistry,
  METRICS,
  type MetricDefinition,
  seriesNames,
} from '../../src/telemetry/index.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const DASHBOARD = path.join(ROOT, 'deploy', 'grafana', 'promptmesh.json');

const PROMQL_WORDS = new Set(
  (
    'sum avg min max count stddev stdvar topk bottomk quantile count_values group by without on ignoring ' +
    'group_left group_right and or unless bool offset rate irate increase delta idelta deriv changes resets ' +
    'histogram_quantile time vector scalar abs ceil floor round clamp clamp_min clamp_max label_replace ' +
    'label_join sort sort_desc absent absent_over_time avg_over_time max_over_time min_over_time sum_over_time ' +
    'count_over_time last_over_time predict_linear timestamp label_values'
  ).split(' '),
);

interface Panel {
  title?: string;
  type?: string;
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: { expr?: string }[];
  panels?: Panel[];
}

interface Dashboard {
  panels: Panel[];
  templating: { list: { name: string; query?: unknown; definition?: string; multi?: boolean }[] };
  annotations: { list: { name: string; expr?: string }[] };
}

const readDashboard = () => JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as Dashboard;

function panels(): Panel[] {
  const out: Panel[] = [];
  const walk = (ps: Panel[]) => {
    for (const p of ps) {
      out.push(p);
      walk(p.panels ?? []);
    }
  };
  walk(readDashboard().panels);
  return out;
}

function expressions(): { where: string; expr: string }[] {
  const d = readDashboard();
  const out: { where: string; expr: string }[] = [];
  const walk = (ps: Panel[]) => {
    for (const p of ps) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel '${p.title}'`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  for (const a of d.annotations.list) if (a.expr) out.push({ where: `annotation '${a.name}'`, expr: a.expr });
  for (const v of d.templating.list)
    if (v.definition) out.push({ where: `variable '${v.name}'`, expr: v.definition });
  return out;
}

/** Identifiers outside label matchers, ranges, strings and by/without/on/ignoring lists: metric names and words. */
function identifiers(expr: string): string[] {
  const stripped = expr
    .replace(/"[^"]*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1')
    .replace(/label_values\(([^,)]*),[^)]*\)/g, 'label_values($1)');
  return stripped.match(/[A-Za-z_:][A-Za-z0-9_:]*/g) ?? [];
}

test('every metric the dashboard queries is one the code exports (or a DCGM metric)', async () => {
  const ours = new Set(Object.values(METRICS as Record<string, MetricDefinition>).flatMap(seriesNames));
  const registry = createProcessRegistry();
  const defaults = new Set(
    (await registry.getMetricsAsJSON()).flatMap((m) =>
      String(m.type) === 'histogram' ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name],
    ),
  );
  const exprs = expressions();
  assert.ok(exprs.length >= 25, `only ${exprs.length} queries found: did the dashboard layout change?`);
  const used = new Set<string>();
  for (const { where, expr } of exprs) {
    for (const id of identifiers(expr)) {
      if (PROMQL_WORDS.has(id)) continue;
      used.add(id);
      const known = ours.has(id) || defaults.has(id) || id.startsWith('DCGM_FI_');
      assert.ok(known, `${where} queries '${id}', which the code does not export: ${expr}`);
    }
  }
  // The dashboard shows what the issue asks for, not a subset.
  for (const must of [
    'promptmesh_examples_total',
    'promptmesh_loss',
    'promptmesh_eval_score',
    'promptmesh_step_phase_seconds_sum',
    'promptmesh_allreduce_bytes_total',
    'promptmesh_world_size',
    'promptmesh_generation',
    'promptmesh_bank_head_step',
    'promptmesh_tensor_memory_bytes',
    'process_resident_memory_bytes',
    'DCGM_FI_DEV_GPU_UTIL',
  ]) {
    assert.ok(used.has(must), `the dashboard does not chart ${must}`);
  }
});

test('a metric name that is not exported is caught', () => {
  assert.deepEqual(identifiers('sum by (task) (rate(promptmesh_nope_total{task="x"}[5m]))'), [
    'sum',
    'by',
    'rate',
    'promptmesh_nope_total',
  ]);
});

test('promtool parses every dashboard expression', {
  skip: spawnSync('promtool', ['--version']).error
    ? 'skipped: promtool not found (apt-get install prometheus)'
    : false,
}, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
  try {
    const rules = expressions()
      .filter((e) => !e.expr.startsWith('label_values('))
      .map((e, i) => ({
        record: `dashboard:expr_${i}`,
        // Grafana's variables, as Grafana substitutes them.
        expr: e.expr
          .replaceAll('$__rate_interval', '1m')
          .replaceAll('$namespace', '.*')
          .replaceAll('$job', 'demo'),
      }));
    const file = path.join(dir, 'rules.yml');
    fs.writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
    const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** The label matchers of every selector of `metric` in an expression. */
function selectors(expr: string, metric: RegExp): { name: string; matchers: string }[] {
  return [...expr.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?/g)]
    .filter((m) => metric.test(m[1]!))
    .map((m) => ({ name: m[1]!, matchers: m[2] ?? '' }));
}

test('every promptmesh series is scoped to the selected job (namespace and promptmesh_job)', () => {
  const d = readDashboard();
  const job = d.templating.list.find((v) => v.name === 'job');
  assert.ok(job, 'the dashboard has a job variable');
  assert.equal(job.multi, false, 'one job at a time: the panels aggregate over its processes');
  assert.match(job.definition ?? '', /label_values\(promptmesh_build_info\{[^}]*\}, promptmesh_job\)/);
  let n = 0;
  for (const { where, expr } of expressions()) {
    if (where.startsWith('variable')) continue;
    for (const s of selectors(expr, /^(promptmesh_|process_|nodejs_)/)) {
      n++;
      assert.match(s.matchers, /namespace=~"\$namespace"/, `${where}: ${s.name} without the namespace`);
      assert.match(s.matchers, /promptmesh_job=~"\$job"/, `${where}: ${s.name} is not scoped to the job`);
    }
  }
  assert.ok(n >= 30, `${n} selectors checked`);
});

test("GPU panels show only the GPUs of the job's pods, not every GPU of the cluster", () => {
  const gpu = expressions().filter((e) => /DCGM_FI_/.test(e.expr));
  assert.ok(gpu.length >= 2, 'GPU utilisation and memory panels');
  for (const { where, expr } of gpu) {
    // Each DCGM series is kept only when its (namespace, pod) is a pod of the selected job.
    assert.match(
      expr,
      /DCGM_FI_\w+\{[^}]*\} \* on \(namespace, pod\) group_left \(\) max by \(namespace, pod\) \(promptmesh_\w+\{[^}]*promptmesh_job=~"\$job"[^}]*\}\)/,
      `${where}: ${expr}`,
    );
  }
});

test('no percent panel charts a value that is not a ratio (the stage index)', () => {
  const percent = new Set(['percentunit', 'percent']);
  const ratio = panels().filter((p) => percent.has(p.fieldConfig?.defaults?.unit ?? ''));
  assert.ok(ratio.some((p) => p.title === 'Stage progress'));
  for (const p of ratio)
    for (const t of p.targets ?? [])
      assert.doesNotMatch(
        t.expr ?? '',
        /promptmesh_stage\{|promptmesh_stage\b(?!_)/,
        `${p.title}: the stage index on a percent axis`,
      );
  const stage = panels().find((p) => (p.targets ?? []).some((t) => /promptmesh_stage\{/.test(t.expr ?? '')));
  assert.ok(stage, 'the stage index is still shown');
  assert.ok(!percent.has(stage.fieldConfig?.defaults?.unit ?? ''), `${stage.title}: unit`);
});
