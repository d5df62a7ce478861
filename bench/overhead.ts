/**
 * Runtime overhead benchmark: the demo job's first stage (the shipped tiny backbone, batch 32) trained by the
 * single-process Trainer, by 1 worker and by 2 workers (real worker processes, a real nats-server, the Coordinator
 * in this process). Per step: data (tokenize the shard), forward/backward, all-reduce, optimizer, and coordination
 * (the rest of the coordinator-measured step: planning, NATS round trips, waiting for the slowest worker), plus the
 * fraction of step time outside forward/backward and examples/s.
 *
 *   npm run bench -- overhead [--json] [--steps S] [--warmup W] [--backend NAME]
 *
 * Distributed step time is measured by the coordinator from publishing the plan to the last report; the split
 * takes each part's maximum over the workers (the slowest worker sets the pace). The first W steps are warm-up
 * (kernel compilation, connection set-up) and left out.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { selectBackend } from '../src/backend/index.js';
import { localWorkerNodeFlags } from '../src/cli/worker-node-flags.js';
import { demoJob } from '../src/config/demo-job.js';
import type { JobConfig } from '../src/config/job-config.js';
import { connectNats } from '../src/control/nats-connect.js';
import { startNatsServer } from '../src/control/nats-server.js';
import { loadT5Model } from '../src/model/load-t5.js';
import { loadTokenizer } from '../src/model/tokenizer/index.js';
import { type CommittedStep, Coordinator } from '../src/runtime/coordinator/coordinator.js';
import { openRuntimeBank } from '../src/runtime/runtime-bank.js';
import { createLogger } from '../src/telemetry/logger.js';
import { ExampleEncoder } from '../src/train/batching.js';
import { silentProgress } from '../src/train/progress.js';
import { identityReducer } from '../src/train/reducer.js';
import { createStageMethod, trainerOptions } from '../src/train/run-job.js';
import { loadTrainTasks } from '../src/train/task-source.js';
import { Trainer } from '../src/train/trainer.js';

/** A fresh join token per run (the coordinator refuses short or placeholder tokens). */
const BENCH_TOKEN = randomBytes(16).toString('hex');

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');

interface Row {
  mode: string;
  workers: number;
  steps: number;
  msPerStep: number;
  data: number;
  forwardBackward: number;
  allReduce: number;
  optimizer: number;
  coordination: number;
  outsideForwardBackward: number;
  examplesPerSec: number;
}

function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

function benchJob(steps: number): JobConfig {
  const demo = demoJob({ steps });
  const stage = demo.stages[0]!;
  // Only the first stage; a tiny final evaluation (it runs at the last checkpoint, outside the step timings).
  return { ...demo, jobId: 'overhead', stages: [{ ...stage, train: { ...stage.train, evalExamples: 8 } }] };
}

function summarize(mode: string, workers: number, steps: CommittedStep[]): Row {
  const n = steps.length;
  const sum = (f: (s: CommittedStep) => number) => steps.reduce((a, s) => a + f(s), 0);
  const ms = sum((s) => s.ms);
  const part = (k: keyof CommittedStep['timings']) => sum((s) => s.timings[k]) / n;
  return {
    mode,
    workers,
    steps: n,
    msPerStep: ms / n,
    data: part('data'),
    forwardBackward: part('forwardBackward'),
    allReduce: part('allReduce'),
    optimizer: part('optimizer'),
    coordination: part('coordination'),
    outsideForwardBackward: 1 - sum((s) => s.timings.forwardBackward) / ms,
    examplesPerSec: sum((s) => s.examples) / (ms / 1000),
  };
}

async function singleProcess(job: JobConfig, warmup: number): Promise<Row> {
  const stage = job.stages[0]!;
  const tokenizer = await loadTokenizer(job.backbone.tokenizer);
  const { model } = loadT5Model(job.backbone.checkpoint);
  const encoder = new ExampleEncoder(tokenizer, {
    maxSourceLength: job.maxSourceLength,
    maxTargetLength: job.maxTargetLength,
  });
  const method = createStageMethod(stage, model, new Map(), job.maxSourceLength);
  const trainer = new Trainer(
    model,
    method,
    encoder,
    loadTrainTasks(job.data, stage.tasks),
    trainerOptions(stage, silentProgress, job.maxTargetLength),
  );
  const rows: CommittedStep[] = [];
  try {
    for (let s = 0; s < stage.train.steps; s++) {
      // The step `train` runs: the same units, tree and update as the workers, with the identity reducer.
      const r = await trainer.step(trainer.plan(s), identityReducer);
      if (s < warmup) continue;
      rows.push({
        stage: 0,
        step: s,
        loss: r.loss,
        perTask: {},
        tasks: {},
        examples: r.examples,
        tokens: r.tokens,
        generation: 0,
        worldSize: 1,
        ms: r.ms,
        timings: {
          data: 0,
          forwardBackward: r.timings.forwardBackward,
          allReduce: r.timings.reduce,
          optimizer: r.timings.optimizer,
          coordination: 0,
        },
      });
    }
  } finally {
    method.dispose();
    model.dispose();
  }
  return summarize('single process', 1, rows);
}

async function distributed(
  job: JobConfig,
  n: number,
  warmup: number,
  backend: string | undefined,
  nodeFlags: string[],
  mode = `${n} worker${n > 1 ? 's' : ''}`,
): Promise<Row> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-bench-'));
  const nats = await startNatsServer();
  const children: ChildProcess[] = [];
  const jobFile = path.join(dir, 'job.json');
  fs.writeFileSync(jobFile, JSON.stringify(job));
  const bankDir = path.join(dir, 'bank');
  const nc = await connectNats({ url: nats.url }, 'promptmesh-bench');
  try {
    const bank = await openRuntimeBank({ kind: 'dir', dir: bankDir }, nc);
    const tokenizer = await loadTokenizer(job.backbone.tokenizer);
    const steps: CommittedStep[] = [];
    const coord = new Coordinator(
      nc,
      bank,
      job,
      tokenizer,
      {
        token: BENCH_TOKEN,
        minWorkers: n,
        maxWorkers: n,
        heartbeatMs: 500,
        heartbeatTimeoutMs: 10_000,
        checkpointEvery: 1_000_000,
        resendMs: 30_000,
        formTimeoutMs: 120_000,
        maxFailures: 3,
        progress: silentProgress,
        log: createLogger(
          { format: 'text', level: 'info', write: (l) => process.stderr.write(l) },
          { role: 'coordinator' },
        ),
      },
      { onStep: (s) => steps.push(s) },
    );
    await coord.start();
    for (let i = 0; i < n; i++) {
      const child = spawn(
        process.execPath,
        [
          ...nodeFlags,
          MAIN,
          'worker',
          '--nats',
          nats.url,
          '--config',
          jobFile,
          '--bank',
          bankDir,
          '--token',
          BENCH_TOKEN,
          '--worker-id',
          `w${i}`,
          '--metrics-port',
          'off',
          ...(backend ? ['--backend', backend] : []),
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let err = '';
      child.stderr!.on('data', (d: Buffer) => {
        err = (err + d.toString()).slice(-4000);
      });
      child.once('exit', (code) => {
        if (code !== 0) process.stderr.write(`[w${i}] exited with ${code}:\n${err}\n`);
      });
      children.push(child);
    }
    const ok = await coord.done;
    await coord.stop();
    if (!ok) throw new Error(`the ${n}-worker run failed (see the coordinator's log above)`);
    return summarize(
      mode,
      n,
      steps.filter((s) => s.step >= warmup),
    );
  } finally {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null) return resolve();
            const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
          }),
      ),
    );
    await nc.drain().catch(() => {});
    await nats.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function main(args: string[]): Promise<void> {
  if (args.includes('--help')) {
    console.log(
      'usage: npm run bench -- overhead [--json] [--steps S (default 40)] [--warmup W (default 5)] [--backend NAME]',
    );
    return;
  }
  const json = args.includes('--json');
  const steps = Number(arg(args, 'steps') ?? 40);
  const warmup = Number(arg(args, 'warmup') ?? 5);
  const backend = arg(args, 'backend');
  const chosen = await selectBackend({ requested: backend, log: () => {} });
  const job = benchJob(steps);
  // Workers get the flags `up` would give them on this machine; when that is not the default, the 2-worker run is
  // repeated with the default collector, so the effect of the choice is measured in the same run.
  const one = localWorkerNodeFlags(1).flags;
  const two = localWorkerNodeFlags(2);
  const rows = [
    await singleProcess(job, warmup),
    await distributed(job, 1, warmup, backend, one),
    await distributed(job, 2, warmup, backend, two.flags),
  ];
  if (two.flags.length > 0) {
    rows.push(await distributed(job, 2, warmup, backend, [], '2 workers, default GC'));
  }
  const speedup = rows[2]!.examplesPerSec / rows[1]!.examplesPerSec;
  const defaultGcSpeedup = rows[3] ? rows[3].examplesPerSec / rows[1]!.examplesPerSec : undefined;
  const env = {
    backend: String((chosen as { name?: string })?.name ?? backend ?? 'auto'),
    cpus: os.cpus().length,
    steps,
    warmup,
    batchSize: job.stages[0]!.train.batchSize,
    workerNodeFlags: two.flags.join(' '),
  };
  if (json) {
    for (const r of rows) console.log(JSON.stringify({ bench: 'overhead', ...env, ...r }));
    console.log(
      JSON.stringify({
        bench: 'overhead',
        ...env,
        twoVsOneWorkers: speedup,
        ...(defaultGcSpeedup !== undefined ? { twoVsOneWorkersDefaultGc: defaultGcSpeedup } : {}),
      }),
    );
    return;
  }
  console.log(
    `overhead: demo job stage 1, batch ${env.batchSize}, ${steps} steps (first ${warmup} left out), backend ${env.backend}, ${env.cpus} CPUs`,
  );
  const f = (x: number) => x.toFixed(1).padStart(8);
  console.log(
    `${'mode'.padEnd(24)}${'ms/step'.padStart(8)}${'data'.padStart(8)}${'fwd/bwd'.padStart(8)}${'allred'.padStart(8)}${'optim'.padStart(8)}${'coord'.padStart(8)}${'outside'.padStart(9)}${'ex/s'.padStart(8)}`,
  );
  for (const r of rows) {
    console.log(
      `${r.mode.padEnd(24)}${f(r.msPerStep)}${f(r.data)}${f(r.forwardBackward)}${f(r.allReduce)}${f(r.optimizer)}${f(r.coordination)}${`${(r.outsideForwardBackward * 100).toFixed(1)}%`.padStart(9)}${f(r.examplesPerSec)}`,
    );
  }
  console.log(
    `2 workers vs 1: ${speedup.toFixed(2)}x examples/s (target >= 1.7x); outside forward/backward target <= 10%`,
  );
  console.log(`workers: ${two.reason}`);
  if (defaultGcSpeedup !== undefined) {
    console.log(`2 workers vs 1 with the default garbage collector: ${defaultGcSpeedup.toFixed(2)}x`);
  }
}
