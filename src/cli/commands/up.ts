import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NATS_ENV } from '../../control/nats-connect.js';
import { type NatsServerHandle, startNatsServer } from '../../control/nats-server.js';
import { type CliCommand, optBool, optInt, optString, UsageError } from '../command.js';
import { localWorkerEnv } from '../worker-env.js';
import { localWorkerNodeFlags } from '../worker-node-flags.js';

/**
 * Metrics ports for the coordinator and each worker: consecutive from a base, or free ones picked here so that
 * they can be printed before the children start (a port freed here could be taken meanwhile; the child then
 * fails with a message naming it, which beats printing URLs nobody can predict).
 */
async function pickMetricsPorts(
  base: string | undefined,
  host: string,
  count: number,
): Promise<number[] | undefined> {
  if (base === 'off') return undefined;
  if (base !== undefined && base !== '0') {
    const b = Number(base);
    if (!Number.isInteger(b) || b < 1 || b + count - 1 > 65535) {
      throw new UsageError(`--metrics-port expects a port (1-${65536 - count}), 0 or 'off', got '${base}'`);
    }
    return Array.from({ length: count }, (_, i) => b + i);
  }
  const ports: number[] = [];
  const held: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const srv = net.createServer();
      held.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, host, () => resolve());
      });
      ports.push((srv.address() as net.AddressInfo).port);
    }
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
  return ports;
}

/**
 * TensorFlow prints two INFO lines when it loads (absl's "before InitializeLog" warning and "oneDNN custom
 * operations are on"), which TF_CPP_MIN_LOG_LEVEL does not silence; with N workers they would bury the progress
 * lines. Only these two exact lines are dropped; every other line, TensorFlow's errors included, passes.
 */
export function dropTensorFlowBanner(chunk: string): string {
  return chunk
    .split(/(?<=\n)/)
    .filter(
      (l) =>
        !l.startsWith('WARNING: All log messages before absl::InitializeLog() is called') &&
        !/^I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on/.test(l),
    )
    .join('');
}

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'main.js');

export const command: CliCommand = {
  path: ['up'],
  summary: 'Run a whole job on this machine: nats-server, the coordinator and N workers, with live progress',
  usage: '[--workers N] [--config JOB.json] [--steps S] [--bank DIR] [--backend NAME]',
  description: `
Starts a nats-server (from PATH, JetStream on, a free loopback port, its own temp store) unless NATS_URL is set,
then the coordinator and N worker processes, all bound to 127.0.0.1. Shows the coordinator's live progress and
stops everything on Ctrl-C or when the job ends (exit 0 when it completes). Without --config it trains the
built-in demo job (ATTEMPT on the demo suite with the shipped tiny backbone). The bank folder keeps every
version: run 'promptmesh bank ls --bank DIR' afterwards, or run 'up' again to resume from the bank head
(--from VERSION: from any earlier version, with any --workers). When the workers and the coordinator outnumber
the CPUs, workers run with node --single-threaded-gc, so V8's collector threads do not slow training.
Workers use the fastest installed backend (native TensorFlow when scripts/setup.sh built it, else wasm) and
share the machine: CPUs / N TensorFlow threads each, one GPU each (CUDA_VISIBLE_DEVICES), malloc settings that
keep freed buffers; variables you set yourself win (docs/backends.md).`,
  examples: [
    'promptmesh up --workers 2',
    'promptmesh up --workers 3 --config job.json --bank ./runs/bank',
    'NATS_URL=nats://127.0.0.1:4222 promptmesh up --workers 2 --steps 100',
    'promptmesh up --workers 2 --steps 10 --backend wasm',
  ],
  options: [
    { name: 'workers', type: 'string', value: 'N', description: 'worker processes', default: '2' },
    { name: 'config', type: 'string', value: 'FILE', description: 'job config (default: the demo job)' },
    { name: 'steps', type: 'string', value: 'S', description: "override every stage's step count" },
    {
      name: 'job-id',
      type: 'string',
      value: 'ID',
      description: 'override the job id (a new job in the same bank)',
    },
    {
      name: 'bank',
      type: 'string',
      value: 'DIR',
      description: 'prompt bank folder',
      default: 'promptmesh-bank',
    },
    {
      name: 'backend',
      type: 'string',
      value: 'NAME',
      description: "workers' tfjs backend (node-gpu | node | wasm | cpu; default: the fastest installed)",
    },
    {
      name: 'allow-tf32',
      type: 'boolean',
      description:
        'let GPUs run float32 matmuls in TF32 (faster on Ampere and newer; results move by ~1e-3 relative)',
    },
    {
      name: 'from',
      type: 'string',
      value: 'VERSION',
      description: "resume from this bank version instead of the job's head (see 'coordinator --help')",
    },
    {
      name: 'checkpoint-every',
      type: 'string',
      value: 'K',
      description: 'bank version every K steps',
      default: '20',
    },
    {
      name: 'metrics-port',
      type: 'string',
      value: 'PORT',
      description:
        'metrics of the coordinator on PORT, worker i on PORT+1+i (default: free ports; off = no metrics)',
    },
    {
      name: 'metrics-host',
      type: 'string',
      value: 'HOST',
      description: 'interface the metrics ports bind (default 127.0.0.1)',
    },
  ],
  async run(ctx) {
    const n = optInt(ctx, 'workers', 2)!;
    if (n < 1) throw new UsageError('--workers must be at least 1');
    const bank = path.resolve(optString(ctx, 'bank') ?? 'promptmesh-bank');
    const token = randomBytes(16).toString('hex');
    let nats: NatsServerHandle | undefined;
    let url = process.env[NATS_ENV.url];
    const say = (l: string) => ctx.stderr.write(`[up] ${l}\n`);
    if (!url) {
      nats = await startNatsServer();
      url = nats.url;
      say(`nats-server with JetStream on ${url} (store ${nats.storeDir})`);
    } else {
      say(`using NATS at ${url}`);
    }
    const common = ['--nats', url, '--bank', bank, '--token', token];
    for (const f of ['config', 'steps', 'job-id'] as const) {
      const v = optString(ctx, f);
      if (v) common.push(`--${f}`, v);
    }
    const env = {
      ...process.env,
      PROMPTMESH_PROGRESS: (ctx.stderr as NodeJS.WriteStream).isTTY ? 'tty' : 'lines',
    };
    const metricsHost = optString(ctx, 'metrics-host') ?? '127.0.0.1';
    const metricsPorts = await pickMetricsPorts(optString(ctx, 'metrics-port'), metricsHost, n + 1);
    const metricsArgs = (i: number) =>
      metricsPorts
        ? ['--metrics-host', metricsHost, '--metrics-port', String(metricsPorts[i])]
        : ['--metrics-port', 'off'];
    const children: ChildProcess[] = [];
    const workerNode = localWorkerNodeFlags(n);
    say(workerNode.reason);
    const workerEnv = localWorkerEnv(n, { allowTf32: optBool(ctx, 'allow-tf32') });
    say(workerEnv.reason);
    const launch = (args: string[], nodeFlags: string[] = [], extraEnv: Record<string, string> = {}) => {
      const child = spawn(process.execPath, [...nodeFlags, MAIN, ...args], {
        stdio: ['ignore', 'inherit', 'pipe'],
        env: { ...env, ...extraEnv },
      });
      child.stderr!.on('data', (d: Buffer) => {
        const text = dropTensorFlowBanner(d.toString('utf8'));
        if (text) ctx.stderr.write(text);
      });
      children.push(child);
      return child;
    };
    const coordinator = launch([
      'coordinator',
      ...common,
      '--min-workers',
      String(n),
      '--max-workers',
      String(n),
      '--checkpoint-every',
      optString(ctx, 'checkpoint-every') ?? '20',
      ...(optString(ctx, 'from') ? ['--from', optString(ctx, 'from')!] : []),
      ...metricsArgs(0),
    ]);
    for (let i = 0; i < n; i++) {
      const backend = optString(ctx, 'backend');
      launch(
        [
          'worker',
          ...common,
          '--worker-id',
          `worker-${i}`,
          // Loopback whatever PROMPTMESH_LISTEN says: every worker of `up` needs its own free port.
          '--listen',
          '127.0.0.1:0',
          ...(backend ? ['--backend', backend] : []),
          ...metricsArgs(i + 1),
        ],
        workerNode.flags,
        workerEnv.env(i),
      );
    }
    if (metricsPorts) {
      const shown = metricsHost === '0.0.0.0' ? '127.0.0.1' : metricsHost;
      const urls = metricsPorts.map(
        (p, i) => `${i === 0 ? 'coordinator' : `worker-${i - 1}`} http://${shown}:${p}/metrics`,
      );
      say(`metrics: ${urls.join(', ')}`);
    }
    say(`coordinator and ${n} workers started; bank ${bank}; Ctrl-C stops everything`);
    let interrupted = false;
    const onSignal = () => {
      interrupted = true;
      say('stopping...');
      for (const c of children) c.kill('SIGTERM');
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const code: number = await new Promise((resolve) => coordinator.once('exit', (c) => resolve(c ?? 1)));
    // Workers get 'stop' from the coordinator; give them a moment, then make sure.
    await Promise.all(
      children
        .filter((c) => c !== coordinator)
        .map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve();
              const t = setTimeout(() => c.kill('SIGKILL'), 5000);
              c.once('exit', () => {
                clearTimeout(t);
                resolve();
              });
              if (code !== 0) c.kill('SIGTERM');
            }),
        ),
    );
    await nats?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (interrupted) return 130;
    say(
      code === 0
        ? `job complete; versions: promptmesh bank ls --bank ${bank}`
        : `coordinator exited with ${code}`,
    );
    return code;
  },
};
