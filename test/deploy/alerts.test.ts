/**
 * Alerts as code: deploy/prometheus/promptmesh-alerts.yml (loaded by prometheus.yml) and the PrometheusRule in
 * k8s/monitoring carry the same rules; real promtool checks them (`check rules`) and runs their unit tests (`test
 * rules` on promptmesh-alerts.test.yml: series in, alerts out, for the stalled, worker-lost, loss-not-finite,
 * checkpoints-failing and all-reduce-slow alerts); every alert has a severity and a runbook section that exists in
 * docs/monitoring.md, and queries only metrics the code exports.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { METRICS, type MetricDefinition, seriesNames } from '../../src/telemetry/index.js';
import { readYamlObjects } from './kustomize-lite.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PROM_DIR = path.join(ROOT, 'deploy', 'prometheus');
const RULES = path.join(PROM_DIR, 'promptmesh-alerts.yml');
const NO_PROMTOOL = spawnSync('promtool', ['--version']).error
  ? 'skipped: promtool not found (scripts/setup.sh installs it: apt-get install prometheus)'
  : false;

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

const groups = () => parse(fs.readFileSync(RULES, 'utf8')).groups as { name: string; rules: AlertRule[] }[];
const alerts = () => groups().flatMap((g) => g.rules);

test('the PrometheusRule carries exactly the rules of deploy/prometheus/promptmesh-alerts.yml', () => {
  const [rule] = readYamlObjects(path.join(ROOT, 'k8s', 'monitoring', 'prometheus-rule.yaml'));
  assert.equal(rule!.kind, 'PrometheusRule');
  assert.deepEqual(
    rule!.spec.groups,
    groups(),
    'k8s/monitoring/prometheus-rule.yaml differs from the rules file: copy the groups over',
  );
  const kustomization = parse(
    fs.readFileSync(path.join(ROOT, 'k8s', 'monitoring', 'kustomization.yaml'), 'utf8'),
  );
  assert.ok(kustomization.resources.includes('prometheus-rule.yaml'));
});

test('the five alerts exist, each with a severity and a runbook section in docs/monitoring.md', () => {
  const names = alerts().map((a) => a.alert);
  assert.deepEqual(names.sort(), [
    'PromptmeshAllReduceSlow',
    'PromptmeshCheckpointsFailing',
    'PromptmeshJobStalled',
    'PromptmeshLossNotFinite',
    'PromptmeshWorkerLost',
  ]);
  const docs = fs.readFileSync(path.join(ROOT, 'docs', 'monitoring.md'), 'utf8');
  // GitHub's anchors: the heading lower-cased, spaces to dashes, punctuation dropped.
  const anchors = new Set(
    [...docs.matchAll(/^#+ (.+)$/gm)].map((m) =>
      m[1]!
        .toLowerCase()
        .replace(/[^a-z0-9 -]/g, '')
        .replace(/ /g, '-'),
    ),
  );
  for (const a of alerts()) {
    assert.ok(
      ['critical', 'warning'].includes(a.labels.severity!),
      `${a.alert}: severity ${a.labels.severity}`,
    );
    assert.ok(a.annotations.summary && a.annotations.description, `${a.alert}: summary and description`);
    const [file, anchor] = a.annotations.runbook_url!.split('#');
    assert.equal(file, 'docs/monitoring.md', a.alert);
    assert.equal(anchor, a.alert.toLowerCase(), `${a.alert}: the runbook section is named like the alert`);
    assert.ok(anchors.has(anchor!), `${a.alert}: docs/monitoring.md has no section #${anchor}`);
    // Grouped per training job, so one job's alert never hides another's.
    assert.match(a.expr, /by \(namespace, promptmesh_job/, a.alert);
  }
});

test('the alerts query only metrics the code exports', () => {
  const ours = new Set(Object.values(METRICS as Record<string, MetricDefinition>).flatMap(seriesNames));
  const words = new Set(
    'sum max min by on and or unless increase rate abs time Inf bool without ignoring group_left'.split(' '),
  );
  for (const a of alerts()) {
    const stripped = a.expr
      .replace(/"[^"]*"/g, '""')
      .replace(/\{[^}]*\}/g, '')
      .replace(/\[[^\]]*\]/g, '')
      .replace(/\b(by|on|without|ignoring)\s*\([^)]*\)/g, '$1');
    for (const id of stripped.match(/[A-Za-z_:][A-Za-z0-9_:]*/g) ?? []) {
      if (words.has(id)) continue;
      assert.ok(ours.has(id), `${a.alert} queries '${id}', which the code does not export`);
    }
  }
});

test('Prometheus outside Kubernetes loads the rules: prometheus.yml and compose', () => {
  const prom = parse(fs.readFileSync(path.join(PROM_DIR, 'prometheus.yml'), 'utf8'));
  assert.deepEqual(prom.rule_files, [path.basename(RULES)]);
  // The alerts group by promptmesh_job: the static targets carry it as the PodMonitors do on Kubernetes.
  for (const s of prom.scrape_configs.filter((x: { job_name: string }) =>
    x.job_name.startsWith('promptmesh'),
  ))
    for (const c of s.static_configs)
      assert.ok(c.labels.promptmesh_job, `${s.job_name}: promptmesh_job label`);
  const compose = parse(fs.readFileSync(path.join(ROOT, 'deploy', 'compose.yaml'), 'utf8'));
  assert.ok(
    compose.services.prometheus.volumes.includes(
      `./prometheus/${path.basename(RULES)}:/etc/prometheus/${path.basename(RULES)}:ro`,
    ),
    'compose mounts the rules beside prometheus.yml',
  );
});

test('promtool check rules and check config accept them', { skip: NO_PROMTOOL }, () => {
  const r = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /SUCCESS: 5 rules found/);
  // The PrometheusRule's groups as a rules file: the same check for what the operator loads.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
  try {
    const [rule] = readYamlObjects(path.join(ROOT, 'k8s', 'monitoring', 'prometheus-rule.yaml'));
    const file = path.join(dir, 'operator.yml');
    fs.writeFileSync(file, stringify({ groups: rule!.spec.groups }));
    const op = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    assert.equal(op.status, 0, `${op.stdout}${op.stderr}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const c = spawnSync('promtool', ['check', 'config', path.join(PROM_DIR, 'prometheus.yml')], {
    encoding: 'utf8',
  });
  assert.equal(c.status, 0, `${c.stdout}${c.stderr}`);
});

test('promtool test rules: the alerts fire on the series they are for, and only then', {
  skip: NO_PROMTOOL,
}, () => {
  const tests = path.join(PROM_DIR, 'promptmesh-alerts.test.yml');
  const spec = parse(fs.readFileSync(tests, 'utf8'));
  // Every alert has a case where it fires and one where it does not.
  for (const a of alerts()) {
    const cases = (
      spec.tests as { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[]
    ).flatMap((t) => t.alert_rule_test.filter((x) => x.alertname === a.alert));
    assert.ok(
      cases.some((x) => x.exp_alerts.length > 0),
      `${a.alert}: no unit test where it fires`,
    );
    assert.ok(
      cases.some((x) => x.exp_alerts.length === 0),
      `${a.alert}: no unit test where it stays quiet`,
    );
  }
  const r = spawnSync('promtool', ['test', 'rules', tests], { encoding: 'utf8', cwd: PROM_DIR });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /SUCCESS/);
});

test('a broken alert fails promtool test rules (the unit tests are real)', { skip: NO_PROMTOOL }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
  try {
    const g = groups();
    // Loss-not-finite that only looks at infinities: the NaN case must fail.
    const loss = g[0]!.rules.find((x) => x.alert === 'PromptmeshLossNotFinite')!;
    loss.expr = 'max by (namespace, promptmesh_job, task) (abs(promptmesh_loss) == Inf)';
    fs.writeFileSync(path.join(dir, path.basename(RULES)), stringify({ groups: g }));
    fs.copyFileSync(path.join(PROM_DIR, 'promptmesh-alerts.test.yml'), path.join(dir, 't.yml'));
    const r = spawnSync('promtool', ['test', 'rules', 't.yml'], { encoding: 'utf8', cwd: dir });
    assert.notEqual(r.status, 0, r.stdout);
    assert.match(`${r.stdout}${r.stderr}`, /PromptmeshLossNotFinite/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
