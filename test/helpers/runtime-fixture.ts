/**
 * Integration-test fixture for the distributed runtime: a tiny random T5 (vocab = the SentencePiece fixture's), a
 * small two-stage job file, a bank folder, and helpers that spawn the real CLI (`coordinator`, `worker`, `up`) as
 * child processes and wait for lines in their logs. Everything lives under one temp folder, removed by cleanup().
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DirectoryStore, PromptBank } from '../../src/bank/index.js';
import { type JobConfig, readJobConfig } from '../../src/config/job-config.js';
import { deriveJobKey, MessageSealer } from '../../src/control/message-auth.js';
import { makeTinyT5, writeT5Checkpoint } from '../../src/model/checkpoint/index.js';
import { loadT5Model } from '../../src/model/load-t5.js';
import type { TensorMap } from '../../src/model/tensor-map.js';
import { loadTokenizer } from '../../src/model/tokenizer/index.js';
import { stateTensors } from '../../src/runtime/replica-state.js';
import { ExampleEncoder } from '../../src/train/batching.js';
import { readBankHistory } from '../../src/train/history.js';
import { silentProgress } from '../../src/train/progress.js';
import { createStageMethod, methodTensors, trainerOptions } from '../../src/train/run-job.js';
import { loadTrainTasks } from '../../src/train/task-source.js';
import { Trainer } from '../../src/train/trainer.js';
import { testBackend } from './backend.js';
import { ensureSpmModel } from './spm-fixture.js';

/** dist/src/cli/main.js (this file runs from dist/test/helpers). */
export const CLI_MAIN = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'src',
  'cli',
  'main.js',
);

export interface RuntimeFixture {
  dir: string;
  jobFile: string;
  bankDir: string;
  /** The raw job JSON (write a variant with writeJob). */
  raw: RawJob;
  job(): JobConfig;
  /** Writes a variant of the job to a new file and returns its path. */
  writeJob(name: string, edit: (j: RawJob) => RawJob): string;
  bank(): PromptBank;
  cleanup(): void;
}

// biome-ignore lint/suspicious/noExplicitAny: the raw job JSON is edited freely by tests
export type RawJob = Record<string, any>;

export interface FixtureOptions {
  jobId?: string;
  /** Steps of stage 1 and stage 2 (default 6 and 4); stage 2 is dropped when 0. */
  steps?: [number, number];
  batchSize?: number;
}

/** Undefined when SentencePiece's tools are missing (the caller skips with SPM_MISSING_MESSAGE). */
export async function makeRuntimeFixture(opts: FixtureOptions = {}): Promise<RuntimeFixture | undefined> {
  const spm = await ensureSpmModel();
  if (!spm) return undefined;
  const tok = await loadTokenizer(spm);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
  const { config, tensors } = makeTinyT5({ variant: 'v1.1', seed: 3, vocabSize: tok.vocabSize });
  writeT5Checkpoint(path.join(dir, 'ckpt'), config, tensors);
  const [s1, s2] = opts.steps ?? [6, 4];
  const batchSize = opts.batchSize ?? 8;
  const train = (steps: number) => ({
    steps,
    batchSize,
    microBatchSize: 4,
    warmupSteps: 0,
    evalExamples: 8,
    evalBatchSize: 8,
    // Every runtime test also scores step 0 (rank 0, with the stage's first version), through its failures.
    evalAtStart: true,
  });
  const raw: RawJob = {
    jobId: opts.jobId ?? 'rt',
    backbone: { checkpoint: 'ckpt', tokenizer: spm },
    data: { suite: 'demo' },
    maxSourceLength: 32,
    maxTargetLength: 4,
    stages: [
      {
        name: 's1',
        method: { name: 'prompt-tuning', perTask: true, promptLength: 4 },
        tasks: ['demo-sentiment', 'demo-topic'],
        train: train(s1),
      },
      ...(s2 > 0
        ? [
            {
              name: 's2',
              method: {
                name: 'attempt',
                multiTask: true,
                promptLength: 4,
                attentionDim: 4,
                sources: ['prompt.demo-sentiment', 'prompt.demo-topic'],
              },
              tasks: ['demo-entail', 'demo-dining'],
              train: train(s2),
            },
          ]
        : []),
    ],
  };
  const jobFile = path.join(dir, 'job.json');
  fs.writeFileSync(jobFile, JSON.stringify(raw, null, 2));
  const bankDir = path.join(dir, 'bank');
  return {
    dir,
    jobFile,
    bankDir,
    raw,
    job: () => readJobConfig(jobFile),
    writeJob(name, edit) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, JSON.stringify(edit(structuredClone(raw)), null, 2));
      return file;
    },
    bank: () => openBank(bankDir),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** A bank folder as tests read it (warnings about unreadable manifests are the tests' business). */
export function openBank(dir: string): PromptBank {
  return new PromptBank(new DirectoryStore(dir), { onWarning: () => {} });
}

/** A spawned CLI process with its output collected. */
export interface CliProcess {
  child: ChildProcess;
  name: string;
  /** stdout + stderr so far. */
  output(): string;
  /** Resolves with the exit code (or 128 + signal number style: null code gives -1). */
  exited: Promise<number>;
  /**
   * Resolves when `re` matches the output from character `from` on (checked on every chunk); rejects after
   * timeoutMs, or when the process exits first, with the log.
   */
  waitFor(re: RegExp, timeoutMs?: number, from?: number): Promise<RegExpMatchArray>;
  /** The output's current length: pass it as `from` to wait for something that happens after now. */
  mark(): number;
  kill(signal?: NodeJS.Signals): void;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export function spawnCli(name: string, args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(process.execPath, [CLI_MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Text log lines (the tests read them as people do) unless a test asks for JSON.
    env: { ...process.env, PROMPTMESH_PROGRESS: 'lines', PROMPTMESH_LOG_FORMAT: 'text', ...env },
  });
  live.add(child);
  let out = '';
  const waiters: { re: RegExp; from: number; resolve: (m: RegExpMatchArray) => void }[] = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    if (process.env.PROMPTMESH_TEST_ECHO)
      process.stderr.write(`${(performance.now() / 1000).toFixed(1)} [${name}] ${d}`);
    for (const w of [...waiters]) {
      const m = out.slice(w.from).match(w.re);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  // 'close', not 'exit': a process's last output can still be in its pipes when it exits, and a test that reads
  // the output once the process is done must see all of it.
  const exited = new Promise<number>((resolve) =>
    child.once('close', (code) => {
      live.delete(child);
      resolve(code ?? -1);
    }),
  );
  return {
    child,
    name,
    output: () => out,
    exited,
    mark: () => out.length,
    waitFor(re, timeoutMs = 60_000, from = 0) {
      const m = out.slice(from).match(re);
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const w = {
          re,
          from,
          resolve: (x: RegExpMatchArray) => {
            clearTimeout(t);
            resolve(x);
          },
        };
        const fail = (why: string) => {
          clearTimeout(t);
          const i = waiters.indexOf(w);
          if (i < 0) return;
          waiters.splice(i, 1);
          reject(new Error(`${name}: no output matching ${re} ${why}; output:\n${out}`));
        };
        const t = setTimeout(() => fail(`within ${timeoutMs} ms`), timeoutMs);
        void exited.then((code) => setTimeout(() => fail(`before it exited with ${code}`), 50));
        waiters.push(w);
      });
    },
    kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** Waits for a process to exit, killing it (and failing with its log) after timeoutMs. */
export async function expectExit(p: CliProcess, timeoutMs = 90_000): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`${p.name} did not exit within ${timeoutMs} ms; output:\n${p.output()}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The join token the test processes share (long enough for checkToken). */
export const TEST_TOKEN = 'test-token-0123456789abcdef';

/**
 * Seals bodies as a holder of the join token would (a member, or a buggy one): for tests that send messages to a
 * running job with a raw NATS client. The body is sent as it is, so it can be malformed.
 */
export function testSealer(jobId: string, token = TEST_TOKEN, sender = 'test'): MessageSealer {
  return new MessageSealer(deriveJobKey(token, jobId), sender);
}

export interface RuntimeArgs {
  natsUrl: string;
  jobFile: string;
  bankDir: string;
  token?: string;
  extra?: string[];
}

function common(a: RuntimeArgs): string[] {
  return [
    '--nats',
    a.natsUrl,
    '--config',
    a.jobFile,
    '--bank',
    a.bankDir,
    '--token',
    a.token ?? TEST_TOKEN,
    ...(a.extra ?? []),
  ];
}

export function startCoordinator(
  a: RuntimeArgs & {
    workers?: number;
    min?: number;
    max?: number;
    name?: string;
    coordinatorArgs?: string[];
  },
): CliProcess {
  const min = String(a.min ?? a.workers ?? 2);
  const max = String(a.max ?? a.workers ?? 2);
  return spawnCli(a.name ?? 'coordinator', [
    'coordinator',
    ...common(a),
    '--min-workers',
    min,
    '--max-workers',
    max,
    ...(a.coordinatorArgs ?? []),
  ]);
}

export function startWorker(a: RuntimeArgs & { id: string; env?: NodeJS.ProcessEnv }): CliProcess {
  return spawnCli(
    a.id,
    ['worker', ...common(a), '--worker-id', a.id, '--backend', testBackend()],
    a.env ?? {},
  );
}

/** Kills whatever is still running (a failed test must not leave processes behind). */
export async function killAll(ps: CliProcess[]): Promise<void> {
  for (const p of ps) p.kill('SIGKILL');
  await Promise.all(ps.map((p) => p.exited));
}

/** Largest |a - b| over two equally sized arrays (Infinity when the sizes differ). */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * The single-process reference: every stage trained with the Trainer for all its steps (no evaluation), each
 * stage's inputs being the previous stages' final tensors (what the runtime hands on through the bank).
 * Returns each stage's final state as a bank version names it: trainable parameters and AdamW moments
 * (`optim.m/NAME`, `optim.v/NAME`). The caller selects the backend first.
 */
export async function referenceRun(job: JobConfig): Promise<Map<string, Float32Array>[]> {
  const tokenizer = await loadTokenizer(job.backbone.tokenizer);
  const { model } = loadT5Model(job.backbone.checkpoint);
  const encoder = new ExampleEncoder(tokenizer, {
    maxSourceLength: job.maxSourceLength,
    maxTargetLength: job.maxTargetLength,
  });
  const out: Map<string, Float32Array>[] = [];
  let inputs: TensorMap = new Map();
  try {
    for (const stage of job.stages) {
      const method = createStageMethod(stage, model, inputs, job.maxSourceLength);
      try {
        const trainer = new Trainer(
          model,
          method,
          encoder,
          loadTrainTasks(job.data, stage.tasks),
          trainerOptions(stage, silentProgress, job.maxTargetLength),
        );
        for (let s = 0; s < stage.train.steps; s++) trainer.trainStep(s);
        const params = trainer.optimizer.parameters();
        const { tensors } = stateTensors(method, {
          step: trainer.optimizer.step,
          params,
          adam: trainer.optimizer.adamState(),
        });
        const frozen = new Set(method.frozen.keys());
        out.push(new Map([...tensors].filter(([k]) => !frozen.has(k)).map(([k, t]) => [k, t.data])));
        inputs = new Map([...inputs, ...methodTensors(method, params)]);
      } finally {
        method.dispose();
      }
    }
  } finally {
    model.dispose();
  }
  return out;
}

/** The trainable parameters stored in a bank version (optimizer moments and frozen tensors left out). */
export async function bankParams(
  bank: PromptBank,
  ref: string,
  names: Iterable<string>,
): Promise<Map<string, Float32Array>> {
  const tensors = await bank.load(ref);
  const out = new Map<string, Float32Array>();
  for (const n of names) {
    const t = tensors.get(n);
    if (!t) throw new Error(`bank version ${ref} has no tensor '${n}'`);
    out.set(n, t.data);
  }
  return out;
}

/**
 * Worst relative difference between two parameter sets: max |a-b| / (max |a| + 1e-6) per tensor. Relative, because
 * prompt values grow with the learning rate while float32 rounding is relative to their size.
 */
export function paramsDiff(
  a: Map<string, Float32Array>,
  b: Map<string, Float32Array>,
): { worst: number; name: string } {
  let worst = 0;
  let name = '';
  for (const [k, x] of a) {
    const y = b.get(k);
    if (!y) return { worst: Number.POSITIVE_INFINITY, name: `${k} (missing)` };
    let scale = 0;
    for (const v of x) scale = Math.max(scale, Math.abs(v));
    const d = maxAbsDiff(x, y) / (scale + 1e-6);
    if (d > worst) {
      worst = d;
      name = k;
    }
  }
  if (a.size !== b.size) return { worst: Number.POSITIVE_INFINITY, name: 'different tensor sets' };
  return { worst, name };
}

/**
 * The first tensor whose bytes differ between two sets (or that one set lacks), with the worst relative
 * difference (paramsDiff) to say how far; undefined when every tensor is byte-identical.
 */
export function firstDifference(
  a: Map<string, Float32Array>,
  b: Map<string, Float32Array>,
): string | undefined {
  for (const [k, x] of a) {
    const y = b.get(k);
    if (!y) return `'${k}' is missing`;
    const bx = Buffer.from(x.buffer, x.byteOffset, x.byteLength);
    const by = Buffer.from(y.buffer, y.byteOffset, y.byteLength);
    if (!bx.equals(by)) {
      const d = paramsDiff(new Map([[k, x]]), new Map([[k, y]]));
      return `'${k}' differs (worst relative difference ${d.worst.toExponential(2)})`;
    }
  }
  if (a.size !== b.size) return `different tensor sets (${a.size} vs ${b.size})`;
  return undefined;
}

/**
 * The job's two stage versions (`JOB.s1` and `JOB@head`) are at the configured steps and their parameters and
 * optimizer moments are byte-identical to the single-process reference run's: no committed step lost, none applied
 * twice, and the exact reduction (train/step-plan.ts) leaves no float32 difference whatever failed on the way.
 */
export async function assertMatchesReference(
  bank: PromptBank,
  job: string,
  steps: [number, number],
  reference: Map<string, Float32Array>[],
  label: string,
  t: { diagnostic(m: string): void },
): Promise<void> {
  const s1 = await bank.get(`${job}.s1`);
  const s2 = await bank.get(`${job}@head`);
  assert.equal(s1.step, steps[0]);
  assert.equal(s2.step, steps[1]);
  for (const [i, v] of [s1, s2].entries()) {
    const ref = reference[i]!;
    const diff = firstDifference(ref, await bankParams(bank, v.id, ref.keys()));
    t.diagnostic(
      `${label}, stage ${i + 1}: ${diff ?? `${ref.size} tensors byte-identical to the single process`}`,
    );
    assert.equal(diff, undefined, `${label}: stage ${i + 1}: ${diff}`);
  }
  // The run history: a redone step is recorded once (its first try is dropped), steps only increase, and each
  // stage's history reaches its last step. A restarted coordinator loses the records of steps it did not see
  // committed into a version, so gaps are reported, not failed.
  const { records } = await readBankHistory(bank, job);
  for (const [i, stage] of ['s1', 's2'].entries()) {
    const done = records.filter((r) => r.kind === 'step' && r.stage === stage).map((r) => r.step);
    assert.ok(done.length > 0, `${label}: no history for stage ${stage}`);
    for (let k = 1; k < done.length; k++) {
      assert.ok(
        done[k]! > done[k - 1]!,
        `${label}: stage ${stage} history steps ${done.join(',')} repeat or go back`,
      );
    }
    assert.equal(done[done.length - 1], steps[i], `${label}: stage ${stage} history ends at its last step`);
    // evalAtStart: the step-0 evaluation is recorded once, whoever wrote the stage's first version and whatever
    // failed, before the stage's step records (it rides in the first version).
    const mine = records.filter((r) => r.stage === stage);
    assert.deepEqual(
      mine.flatMap((r, k) => (r.kind === 'eval' && r.step === 0 ? [k] : [])),
      [0],
      `${label}: stage ${stage} has one step-0 evaluation, first`,
    );
    t.diagnostic(`${label}, stage ${stage}: history of ${done.length}/${steps[i]} steps, none twice`);
  }
}
