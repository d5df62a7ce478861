/**
 * A real job (nats-server, coordinator, two workers as processes) scraped three ways: our own parser (every metric
 * the definitions table promises is there and moving), `promtool check metrics` (Prometheus' own linter: no
 * complaints), and a real Prometheus started with deploy/prometheus/prometheus.yml, queried over its HTTP API.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { METRICS, type MetricDefinition, metricNames } from '../../src/telemetry/index.js';
import { natsSkipReason } from '../helpers/nats.js';
import { SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';
import { fetchText, type LocalJob, parseExposition, poll, startLocalJob, total } from './local-job.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const has = (tool: string) => !spawnSync(tool, ['--version'], { encoding: 'utf8' }).error;
const PROMETHEUS_HINT = 'install Prometheus (`apt-get install prometheus`, or run scripts/setup.sh)';
const skip =
  natsSkipReason() ||
  (!has('promtool') ? `skipped: promtool not found: ${PROMETHEUS_HINT}` : false) ||
  (!has('spm_train') ? `skipped: ${SPM_MISSING_MESSAGE}` : false);

describe('metrics of a running job', { skip, timeout: 300_000 }, () => {
  let job: LocalJob | undefined;
  const scraped = new Map<string, string>();

  before(async () => {
    job = await startLocalJob(2);
    if (!job) throw new Error(SPM_MISSING_MESSAGE);
    const urls = job.urls;
    // Wait until stage 1 is committed and versioned (so the worker evaluated) and stage 2 has steps.
    await poll('stage 1 to complete and stage 2 to commit steps', 180_000, async () => {
      const c = parseExposition((await fetchText(urls.get('coordinator')!)).text);
      const final = c.get('promptmesh_checkpoint_commits_total{kind="stage_final"}') ?? 0;
      return final >= 1 &&
        (c.get('promptmesh_stage') ?? 0) === 1 &&
        (c.get('promptmesh_stage_step') ?? 0) >= 2
        ? true
        : undefined;
    });
    for (const [name, url] of urls) scraped.set(name, (await fetchText(url)).text);
  });

  after(async () => {
    await job?.stop();
  });

  test("every process exports its role's metrics plus the Node process metrics", () => {
    for (const [name, text] of scraped) {
      const role = name === 'coordinator' ? 'coordinator' : 'worker';
      for (const metric of metricNames(role)) {
        assert.match(text, new RegExp(`^# TYPE ${metric} `, 'm'), `${name} does not export ${metric}`);
      }
      for (const other of metricNames(role === 'worker' ? 'coordinator' : 'worker')) {
        if (metricNames(role).includes(other)) continue;
        assert.doesNotMatch(
          text,
          new RegExp(`^# TYPE ${other} `, 'm'),
          `${name} exports the ${other} of the other role`,
        );
      }
      for (const std of [
        'process_cpu_user_seconds_total',
        'process_resident_memory_bytes',
        'nodejs_heap_size_used_bytes',
      ]) {
        assert.match(text, new RegExp(`^${std}`, 'm'), `${name} lacks the default metric ${std}`);
      }
    }
  });

  test('the coordinator counts committed work per task and the workers what they computed', () => {
    const c = parseExposition(scraped.get('coordinator')!);
    const steps = c.get('promptmesh_steps_total')!;
    assert.ok(steps >= 5, `steps_total ${steps}`);
    for (const task of ['demo-sentiment', 'demo-topic']) {
      assert.ok((c.get(`promptmesh_examples_total{task="${task}"}`) ?? 0) > 0, `no examples for ${task}`);
      assert.ok((c.get(`promptmesh_tokens_total{task="${task}"}`) ?? 0) > 0, `no tokens for ${task}`);
      assert.ok(Number.isFinite(c.get(`promptmesh_loss{task="${task}"}`)), `no loss for ${task}`);
    }
    // Every step is a global batch of 8.
    assert.equal(total(c, 'promptmesh_examples_total'), 8 * steps);
    assert.equal(c.get('promptmesh_step_seconds_count'), steps);
    assert.equal(c.get('promptmesh_step_phase_seconds_count{phase="coordination"}'), steps);
    assert.equal(c.get('promptmesh_world_size'), 2);
    assert.equal(c.get('promptmesh_workers'), 2);
    assert.equal(c.get('promptmesh_min_workers'), 2);
    assert.equal(c.get('promptmesh_membership_changes_total{reason="joined"}'), 2);
    assert.equal(c.get('promptmesh_membership_changes_total{reason="timeout"}'), 0);
    assert.ok(c.get('promptmesh_generation')! >= 1);
    assert.equal(c.get('promptmesh_coordinator_phase{phase="done"}'), 0);
    assert.ok(c.get('promptmesh_bank_head_step')! >= 0);
    assert.ok(c.get('promptmesh_bank_head_timestamp_seconds')! > Date.now() / 1000 - 600);

    let evaluated = 0;
    for (const w of ['worker-0', 'worker-1']) {
      const s = parseExposition(scraped.get(w)!);
      assert.ok(s.get('promptmesh_worker_steps_total')! >= steps - 1, `${w} computed too few steps`);
      assert.ok(s.get('promptmesh_allreduce_bytes_total')! > 0);
      assert.ok(s.get('promptmesh_collective_sent_bytes_total')! > 0, `${w} sent nothing to its peer`);
      assert.ok(s.get('promptmesh_collective_received_bytes_total')! > 0);
      assert.equal(s.get('promptmesh_backend_info{backend="wasm"}'), 1);
      assert.ok(
        s.get('promptmesh_tensors')! > 0,
        'tf.memory() reports no tensors: the frozen model is loaded',
      );
      assert.ok(s.get('promptmesh_tensor_memory_bytes')! > 0);
      assert.ok([0, 1].includes(s.get('promptmesh_worker_rank')!));
      if (total(s, 'promptmesh_bank_commits_total') > 0) {
        evaluated++;
        const score = s.get('promptmesh_eval_score{task="demo-sentiment",metric="score"}');
        assert.ok(score !== undefined && score >= 0 && score <= 1, `eval score ${score} is not a 0-1 ratio`);
        assert.ok(s.get('promptmesh_eval_score{task="demo-topic",metric="accuracy"}') !== undefined);
      }
    }
    assert.equal(evaluated, 1, 'exactly one worker (rank 0) writes the checkpoints and evaluates');
  });

  test('promtool check metrics finds nothing to complain about', () => {
    for (const [name, text] of scraped) {
      const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(`${r.stdout}${r.stderr}`.trim(), '', `promtool on ${name}'s /metrics`);
      assert.equal(r.status, 0, `promtool exit status for ${name}`);
    }
  });

  test('probes reflect real state and other paths are 404', async () => {
    for (const [name, url] of job!.urls) {
      const base = url.replace(/\/metrics$/, '');
      const m = await fetchText(url);
      assert.match(m.type ?? '', /^text\/plain; version=0\.0\.4/);
      const live = await fetchText(`${base}/healthz`);
      assert.equal(live.status, 200, `${name} /healthz: ${live.text}`);
      const ready = await fetchText(`${base}/readyz`);
      assert.equal(ready.status, 200, `${name} /readyz: ${ready.text}`);
      assert.match(ready.text, name === 'coordinator' ? /phase (stepping|checkpointing|forming)/ : /joined/);
      assert.equal((await fetchText(`${base}/nope`)).status, 404);
    }
  });

  test('a real Prometheus with the project scrape config sees every process', {
    skip: !has('prometheus') && `skipped: prometheus not found: ${PROMETHEUS_HINT}`,
  }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
    let prom: ChildProcess | undefined;
    try {
      const config = parse(
        fs.readFileSync(path.join(ROOT, 'deploy', 'prometheus', 'prometheus.yml'), 'utf8'),
      );
      const hostPort = (u: string) => new URL(u).host;
      const targets: Record<string, string[]> = {
        'promptmesh-coordinator': [hostPort(job!.urls.get('coordinator')!)],
        'promptmesh-worker': [hostPort(job!.urls.get('worker-0')!), hostPort(job!.urls.get('worker-1')!)],
      };
      // The project's config with this test's targets; jobs for things not running here (DCGM) are dropped.
      config.global.scrape_interval = '1s';
      config.global.scrape_timeout = '1s';
      config.global.evaluation_interval = '1s';
      config.scrape_configs = config.scrape_configs.filter(
        (s: { job_name: string }) => s.job_name in targets,
      );
      assert.equal(
        config.scrape_configs.length,
        2,
        'the project config scrapes the coordinator and the workers',
      );
      for (const s of config.scrape_configs) s.static_configs[0].targets = targets[s.job_name];
      const file = path.join(dir, 'prometheus.yml');
      fs.writeFileSync(file, stringify(config));
      // The alert rules it loads (rule_files, relative to the config file), evaluated against these processes.
      for (const rules of config.rule_files as string[])
        fs.copyFileSync(path.join(ROOT, 'deploy', 'prometheus', rules), path.join(dir, rules));
      const port = await freePort();
      prom = spawn(
        'prometheus',
        [
          `--config.file=${file}`,
          `--storage.tsdb.path=${path.join(dir, 'tsdb')}`,
          `--web.listen-address=127.0.0.1:${port}`,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      const log: string[] = [];
      prom.stderr!.setEncoding('utf8');
      prom.stderr!.on('data', (d: string) => log.push(d));
      const query = async (q: string) => {
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`);
        const body = (await res.json()) as {
          status: string;
          data: { result: { metric: Record<string, string>; value: [number, string] }[] };
        };
        assert.equal(body.status, 'success');
        return body.data.result;
      };
      // Prometheus needs several seconds before its first scrape is queryable: poll.
      const up = await poll(
        `all 3 targets up in Prometheus (log: ${log.join('').slice(-2000)})`,
        90_000,
        async () => {
          const r = await query('up{job=~"promptmesh-.*"} == 1');
          return r.length === 3 ? r : undefined;
        },
      );
      assert.deepEqual(up.map((r) => r.metric.component).sort(), ['coordinator', 'worker', 'worker']);
      const steps = await poll('promptmesh_steps_total in Prometheus', 30_000, async () => {
        const r = await query('promptmesh_steps_total');
        return r.length === 1 ? r : undefined;
      });
      assert.ok(Number(steps[0]!.value[1]) >= 5);
      const perTask = await query('sum by (task) (promptmesh_examples_total)');
      assert.deepEqual(perTask.map((r) => r.metric.task).sort(), ['demo-sentiment', 'demo-topic']);
      const workers = await query('promptmesh_worker_steps_total');
      assert.equal(workers.length, 2, 'one series per worker, told apart by instance');
      const phases = await query('sum by (phase) (promptmesh_step_phase_seconds_count)');
      assert.equal(phases.length, 5);
      // Every alert rule loaded and evaluated without error against the live series; none fires on this job.
      interface AlertRule {
        name: string;
        health: string;
        lastError?: string;
        state: string;
      }
      const alertRules = async () =>
        (
          (await (await fetch(`http://127.0.0.1:${port}/api/v1/rules?type=alert`)).json()) as {
            data: { groups: { rules: AlertRule[] }[] };
          }
        ).data.groups.flatMap((g) => g.rules);
      const evaluated = await poll('every alert rule evaluated', 30_000, async () => {
        const r = await alertRules();
        return r.length > 0 && r.every((x) => x.health !== 'unknown') ? r : undefined;
      });
      assert.ok(evaluated.length >= 5, `alert rules loaded: ${evaluated.map((r) => r.name).join(', ')}`);
      for (const r of evaluated) {
        assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
        assert.equal(r.state, 'inactive', `${r.name} fires on a healthy job`);
      }
    } finally {
      if (prom && prom.exitCode === null) {
        const exited = new Promise((r) => prom!.once('exit', r));
        prom.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

// Keeps the definitions import honest: a metric without help text would fail promtool anyway.
for (const m of Object.values(METRICS as Record<string, MetricDefinition>))
  assert.ok(m.help.length > 10, m.name);
