import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RUNTIME_ENV } from '../../config/runtime-env.js';
import { NATS_ENV } from '../../control/nats-connect.js';
import { type NatsServerHandle, startNatsServer } from '../../control/nats-server.js';
import { LOG_ENV } from '../../telemetry/logger.js';
import { SCORE_SUMMARY_MARK } from '../../train/history.js';
import { type CliCommand, type CliContext, optBool, optString, UsageError } from '../command.js';
import { LOG_OPTIONS, readLogger } from '../log-options.js';
import {
  DEFAULT_RESTART_POLICY,
  describeExit,
  type RestartPolicy,
  type SupervisedProcess,
  Supervisor,
} from '../supervisor.js';
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

/**
 * Splits a chunk of a child's log into what is shown now and the lines that contain `mark`, held back (the
 * coordinator's untrained -> trained summary, which `up` shows last, after the workers have stopped).
 */
export function holdBackLines(chunk: string, mark: string): { shown: string; held: string[] } {
  const held: string[] = [];
  const shown = chunk
    .split(/(?<=\n)/)
    .filter((l) => {
      if (!l.includes(mark)) return true;
      held.push(l.endsWith('\n') ? l : `${l}\n`);
      return false;
    })
    .join('');
  return { shown, held };
}

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'main.js');

export const command: CliCommand = {
  path: ['up'],
  summary:
    'Run a whole job on this machine: nats-server, the coordinator and N workers, supervised, with live progress',
  usage:
    '[--workers N|MIN:MAX] [--config JOB.json] [--steps S] [--bank DIR] [--backend NAME] [--max-restarts R]',
  description: `
Starts a nats-server (from PATH, JetStream on, a free loopback port, its own temp store) unless NATS_URL is set,
then the coordinator and N worker processes, all bound to 127.0.0.1. Shows the coordinator's live progress and
stops everything on Ctrl-C or when the job ends (exit 0 when it completes, 1 when it failed).

It supervises them as torchrun's elastic agent does: a process that dies (a signal, a crash, the OOM killer) is
started again after a backoff (1 s, doubling up to 30 s; a worker waits at least the 4 s heartbeat timeout), at most
--max-restarts times (a process that then ran 10 minutes gets its budget back). Meanwhile the job goes on: a dead
worker's peers roll back the step in flight and continue without it (--workers N lets the job go on with 1 to N
workers; MIN:MAX or --min-workers requires MIN), and the restarted worker joins at the next bank version; a
restarted coordinator continues from the step the workers hold in memory; a restarted nats-server comes back on the
same port and everyone reconnects. A failure costs at most the step in flight and no bank version.

Without --config it trains the built-in demo job (ATTEMPT on the demo suite with the shipped tiny backbone). The bank folder keeps every
version: run 'promptmesh bank ls --bank DIR' afterwards, or run 'up' again to resume from the bank head
(--from VERSION: from any earlier version, with any --workers). When the workers and the coordinator outnumber
the CPUs, workers run with node --single-threaded-gc, so V8's collector threads do not slow training.
Workers use the fastest installed backend (native TensorFlow when scripts/setup.sh built it, else wasm) and
share the machine: CPUs / N TensorFlow threads each, one GPU each (CUDA_VISIBLE_DEVICES), malloc settings that
keep freed buffers; variables you set yourself win (docs/backends.md).`,
  examples: [
    'promptmesh up --workers 2',
    'promptmesh up --workers 3 --config job.json --bank ./runs/bank',
    'promptmesh up --workers 2:4 --max-restarts 10',
    'NATS_URL=nats://127.0.0.1:4222 promptmesh up --workers 2 --steps 100',
    'promptmesh up --workers 2 --steps 10 --backend wasm',
  ],
  options: [
    {
      name: 'workers',
      type: 'string',
      value: 'N|MIN:MAX',
      description: 'worker processes to start (MAX); the job goes on while MIN of them are alive (MIN: 1)',
      default: '2',
    },
    {
      name: 'min-workers',
      type: 'string',
      value: 'N',
      description: 'the job waits while fewer than N workers are alive (same as --workers N:MAX)',
    },
    {
      name: 'max-restarts',
      type: 'string',
      value: 'R',
      description: `restarts allowed per process before up gives up on it (default ${DEFAULT_RESTART_POLICY.maxRestarts})`,
    },
    {
      name: 'join-grace',
      type: 'string',
      value: 'SECONDS',
      description:
        'once MIN workers joined, wait up to SECONDS for all of them before the first step (default 20)',
    },
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
    ...LOG_OPTIONS,
  ],
  async run(ctx) {
    const { min, max } = readWorkers(ctx);
    const policy: RestartPolicy = {
      ...DEFAULT_RESTART_POLICY,
      maxRestarts: readCount(ctx, 'max-restarts', DEFAULT_RESTART_POLICY.maxRestarts),
    };
    const joinGrace = optString(ctx, 'join-grace') ?? String(DEFAULT_JOIN_GRACE_S);
    const bank = path.resolve(optString(ctx, 'bank') ?? 'promptmesh-bank');
    // Fresh secrets per run, handed to the children in their environment (never on a command line): the join
    // token, and the token of the nats-server started here (a client without it is refused).
    const token = randomBytes(32).toString('hex');
    const natsToken = randomBytes(32).toString('hex');
    const say = readLogger(ctx, { role: 'up' });
    // The children's stderr is a pipe, so 'auto' would make them write JSON: they log in up's format and level.
    const logEnv = { [LOG_ENV.format]: say.format, [LOG_ENV.level]: say.level };
    const workers: SupervisedProcess[] = [];

    // The job ends with the coordinator's exit 0 (complete), a signal, or a failure supervision cannot repair.
    let finish: (code: number) => void = () => {};
    const outcome = new Promise<number>((resolve) => {
      finish = resolve;
    });
    const supervisor = new Supervisor(policy, {
      log: say,
      warn: say.warn,
      error: say.error,
      onEnd(p, state, e) {
        if (p.name === 'coordinator') {
          if (state === 'done') return finish(0);
          say.error(
            `the coordinator ${describeExit(e)}${state === 'given-up' ? ' once too often' : ''}: stopping the job`,
          );
          return finish(e.code !== null && e.code !== 0 ? e.code : 1);
        }
        if (p.name === NATS_NAME) {
          say.error(`nats-server ${describeExit(e)} once too often: stopping the job`);
          return finish(1);
        }
        const left = workers.filter((w) => w.live).length;
        if (state !== 'done' && left < min) {
          say.error(
            `${p.name} ${describeExit(e)} (${state}); ${left} worker(s) left, fewer than the ${min} the job needs: stopping the job`,
          );
          finish(1);
        }
      },
    });

    let nats: NatsServerHandle | undefined;
    let url = process.env[NATS_ENV.url];
    if (!url) {
      // Started here the first time, so that a missing nats-server is reported at once; restarted on the same
      // port with the same store, so every client reconnects.
      const server = await startNatsServer({ authToken: natsToken });
      nats = server;
      url = server.url;
      let first = true;
      await supervisor.add({
        name: NATS_NAME,
        async start() {
          if (!first) await server.restart();
          first = false;
          say(
            `nats-server (pid ${server.process.pid}) with JetStream on ${server.url} (store ${server.storeDir})`,
          );
          return server.process;
        },
        classify: () => 'restart',
      });
    } else {
      say(`using NATS at ${url}`);
    }
    const common = ['--nats', url, '--bank', bank];
    for (const f of ['config', 'steps', 'job-id'] as const) {
      const v = optString(ctx, f);
      if (v) common.push(`--${f}`, v);
    }
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      [RUNTIME_ENV.token]: token,
      ...(nats
        ? {
            [NATS_ENV.token]: natsToken,
            [NATS_ENV.user]: undefined,
            [NATS_ENV.password]: undefined,
            [NATS_ENV.credsFile]: undefined,
          }
        : {}),
      // Live progress lines (every committed step, redrawn in place) on a terminal, a line every 2 s otherwise.
      PROMPTMESH_PROGRESS:
        process.env.PROMPTMESH_PROGRESS || ((ctx.stderr as NodeJS.WriteStream).isTTY ? 'tty' : 'lines'),
    };
    const metricsHost = optString(ctx, 'metrics-host') ?? '127.0.0.1';
    const metricsPorts = await pickMetricsPorts(optString(ctx, 'metrics-port'), metricsHost, max + 1);
    const metricsArgs = (i: number) =>
      metricsPorts
        ? ['--metrics-host', metricsHost, '--metrics-port', String(metricsPorts[i])]
        : ['--metrics-port', 'off'];
    const workerNode = localWorkerNodeFlags(max);
    say(workerNode.reason);
    const workerEnv = localWorkerEnv(max, { allowTf32: optBool(ctx, 'allow-tf32') });
    say(workerEnv.reason);
    // The coordinator's untrained -> trained lines, shown at the end with 'job complete' (the last lines a user sees).
    const summary: string[] = [];
    // Each child's stderr, until it has closed: a process's last lines can still be in the pipe after its exit
    // event, and the summary waits for them so that it really is last.
    const logsOpen = new Set<Promise<void>>();
    const launch = (
      name: string,
      args: string[],
      nodeFlags: string[] = [],
      extraEnv: Record<string, string> = {},
    ) => {
      const child = spawn(process.execPath, [...nodeFlags, MAIN, ...args], {
        stdio: ['ignore', 'inherit', 'pipe'],
        env: { ...env, ...logEnv, ...extraEnv },
      });
      child.stderr!.on('data', (d: Buffer) => {
        let text = dropTensorFlowBanner(d.toString('utf8'));
        if (name === 'coordinator') {
          const { shown, held } = holdBackLines(text, SCORE_SUMMARY_MARK);
          text = shown;
          summary.push(...held);
        }
        if (text) ctx.stderr.write(text);
      });
      const open = new Promise<void>((resolve) => child.stderr!.once('close', () => resolve()));
      logsOpen.add(open);
      void open.then(() => logsOpen.delete(open));
      // A spawn error (ENOMEM, EAGAIN) surfaces as an exit with no code, which the supervisor restarts.
      child.once('error', (e) => say.error(`${name}: ${e.message}`));
      say(`started ${name} (pid ${child.pid})`);
      return child;
    };

    // --from names where the job resumes only until this run writes its first version; a coordinator restarted
    // after that resumes from the bank head like any other.
    const from = optString(ctx, 'from');
    let wroteVersion = false;
    await supervisor.add({
      name: 'coordinator',
      start() {
        const child = launch('coordinator', [
          'coordinator',
          ...common,
          '--min-workers',
          String(min),
          '--max-workers',
          String(max),
          '--join-grace',
          joinGrace,
          '--heartbeat-timeout-ms',
          String(HEARTBEAT_TIMEOUT_MS),
          '--checkpoint-every',
          optString(ctx, 'checkpoint-every') ?? '20',
          ...(from && !wroteVersion ? ['--from', from] : []),
          ...metricsArgs(0),
        ]);
        child.stderr!.on('data', (d: Buffer) => {
          if (/bank version [0-9a-f]+ committed at stage/.test(d.toString('utf8'))) wroteVersion = true;
        });
        return child;
      },
      // 0: the job is complete; 1: the coordinator failed the job itself; 2: bad usage. Anything else (a signal,
      // an abort, the OOM killer) is a crash: a new incarnation resumes the job.
      classify: (e) => (e.code === 0 ? 'done' : e.code === 1 || e.code === 2 ? 'fatal' : 'restart'),
    });
    const backend = optString(ctx, 'backend');
    for (let i = 0; i < max; i++) {
      const name = `worker-${i}`;
      workers.push(
        await supervisor.add({
          name,
          start: () =>
            launch(
              name,
              [
                'worker',
                ...common,
                '--worker-id',
                name,
                // Loopback whatever PROMPTMESH_LISTEN says: every worker of `up` needs its own free port.
                '--listen',
                '127.0.0.1:0',
                ...(backend ? ['--backend', backend] : []),
                ...metricsArgs(i + 1),
              ],
              workerNode.flags,
              workerEnv.env(i),
            ),
          // 0: the job completed; 2 bad usage and 3 refused will not change with a restart.
          classify: (e) => (e.code === 0 ? 'done' : e.code === 2 || e.code === 3 ? 'fatal' : 'restart'),
          // Its old self must be declared dead before it joins again under the same id.
          minDelayMs: HEARTBEAT_TIMEOUT_MS + 1000,
        }),
      );
    }
    if (metricsPorts) {
      const shown = metricsHost === '0.0.0.0' ? '127.0.0.1' : metricsHost;
      const urls = metricsPorts.map(
        (p, i) => `${i === 0 ? 'coordinator' : `worker-${i - 1}`} http://${shown}:${p}/metrics`,
      );
      say(`metrics: ${urls.join(', ')}`);
    }
    say(
      `coordinator and ${max} workers started (the job goes on with ${min === max ? 'all' : `at least ${min}`} of them; a process that dies is restarted, at most ${policy.maxRestarts} times); bank ${bank}; Ctrl-C stops everything`,
    );
    let interrupted = false;
    const onSignal = (signal: NodeJS.Signals) => {
      interrupted = true;
      say('stopping...');
      finish(signal === 'SIGINT' ? 130 : 143);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const code = await outcome;
    supervisor.stopRestarts();
    const isWorker = (p: SupervisedProcess) => workers.includes(p);
    // A completed job: the workers got 'stop' from the coordinator; give them a moment to exit on their own.
    if (code === 0) await supervisor.settle(5000, isWorker);
    await supervisor.stop({ which: (p) => p.name !== NATS_NAME, signal: 'SIGTERM', graceMs: 5000 });
    await nats?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (interrupted) return code;
    if (code === 0) {
      await Promise.race([Promise.all(logsOpen), new Promise((r) => setTimeout(r, 2000).unref())]);
      for (const line of summary) ctx.stderr.write(line);
      say(`job complete; versions: promptmesh bank ls --bank ${bank}`);
    } else say.error(`job failed (exit ${code})`);
    return code;
  },
};

const NATS_NAME = 'nats-server';
/** The coordinator's --heartbeat-timeout-ms under `up`; a restarted worker waits it out (see minDelayMs). */
const HEARTBEAT_TIMEOUT_MS = 4000;
const DEFAULT_JOIN_GRACE_S = 20;

/** --workers N (at least 1 of N) or MIN:MAX, and --min-workers. */
export function readWorkers(ctx: CliContext): { min: number; max: number } {
  const spec = optString(ctx, 'workers') ?? '2';
  const m = /^(?:(\d+):)?(\d+)$/.exec(spec.trim());
  if (!m) throw new UsageError(`--workers expects N or MIN:MAX (e.g. 3 or 2:3), got '${spec}'`);
  const max = Number(m[2]);
  const minFlag = optString(ctx, 'min-workers');
  if (m[1] !== undefined && minFlag !== undefined)
    throw new UsageError('give the minimum once: --workers MIN:MAX or --min-workers N');
  const min =
    m[1] !== undefined ? Number(m[1]) : minFlag !== undefined ? readCount(ctx, 'min-workers', 1) : 1;
  if (!(max >= 1 && min >= 1 && min <= max))
    throw new UsageError(`need 1 <= minimum workers <= workers, got ${min}:${max}`);
  return { min, max };
}

function readCount(ctx: CliContext, name: string, fallback: number): number {
  const v = optString(ctx, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 0)
    throw new UsageError(`--${name} expects a whole number >= 0, got '${v}'`);
  return n;
}
