/**
 * A real local job for the telemetry tests: a nats-server, the coordinator and two workers as child processes of
 * the built CLI, on a tiny random T5 with the SentencePiece fixture tokenizer. Stage 1 is short, so its final
 * checkpoint (and evaluation) happens early; stage 2 is long, so the job is still running while it is scraped.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNatsServer } from '../../src/control/nats-server.js';
import { makeTinyT5, writeT5Checkpoint } from '../../src/model/checkpoint/index.js';
import { loadTokenizer } from '../../src/model/tokenizer/index.js';
import { ensureSpmModel } from '../helpers/spm-fixture.js';

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');

export interface LocalJob {
  /** name -> http://127.0.0.1:PORT/metrics, for 'coordinator', 'worker-0', 'worker-1'. */
  urls: Map<string, string>;
  logs: Map<string, string[]>;
  stop(): Promise<void>;
}

function waitForLine(
  name: string,
  logs: string[],
  child: ChildProcess,
  re: RegExp,
  ms: number,
): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${name}: no line matching ${re} within ${ms} ms; log:\n${logs.join('')}`));
    }, ms);
    const check = () => {
      const m = re.exec(logs.join(''));
      if (m) {
        cleanup();
        resolve(m);
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`${name} exited with ${code} before printing ${re}; log:\n${logs.join('')}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stderr?.off('data', check);
      child.off('exit', onExit);
    };
    child.stderr?.on('data', check);
    child.once('exit', onExit);
    check();
  });
}

/** Undefined when SentencePiece's tools are missing. */
export async function startLocalJob(workers = 2): Promise<LocalJob | undefined> {
  const spm = await ensureSpmModel();
  if (!spm) return undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
  const tok = await loadTokenizer(spm);
  const { config, tensors } = makeTinyT5({ variant: 'v1.1', seed: 3, vocabSize: tok.vocabSize });
  writeT5Checkpoint(path.join(dir, 'ckpt'), config, tensors);
  const train = (steps: number) => ({
    steps,
    batchSize: 8,
    microBatchSize: 8,
    warmupSteps: 0,
    evalExamples: 8,
    evalBatchSize: 8,
  });
  const job = {
    jobId: 'telemetry',
    backbone: { checkpoint: 'ckpt', tokenizer: spm },
    data: { suite: 'demo' },
    maxSourceLength: 32,
    maxTargetLength: 4,
    stages: [
      {
        name: 's1',
        method: { name: 'prompt-tuning', perTask: true, promptLength: 4 },
        tasks: ['demo-sentiment', 'demo-topic'],
        train: train(3),
      },
      {
        name: 's2',
        method: { name: 'prompt-tuning', perTask: true, promptLength: 4 },
        tasks: ['demo-sentiment', 'demo-topic'],
        train: train(100000),
      },
    ],
  };
  fs.writeFileSync(path.join(dir, 'job.json'), JSON.stringify(job));
  const nats = await startNatsServer();
  const children = new Map<string, ChildProcess>();
  const logs = new Map<string, string[]>();
  const common = [
    '--nats',
    nats.url,
    '--bank',
    path.join(dir, 'bank'),
    '--token',
    'test-token-0123456789abcdef',
    '--config',
    path.join(dir, 'job.json'),
  ];
  const launch = (name: string, args: string[]) => {
    const child = spawn(process.execPath, [CLI, ...args, '--metrics-port', '0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, PROMPTMESH_PROGRESS: 'lines', PROMPTMESH_LOG_FORMAT: 'text' },
    });
    const lines: string[] = [];
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => lines.push(d));
    children.set(name, child);
    logs.set(name, lines);
  };
  const stop = async () => {
    await Promise.all(
      [...children.values()].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const t = setTimeout(() => c.kill('SIGKILL'), 5000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    await nats.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    launch('coordinator', [
      'coordinator',
      ...common,
      '--min-workers',
      String(workers),
      '--max-workers',
      String(workers),
      '--checkpoint-every',
      '2',
    ]);
    for (let i = 0; i < workers; i++)
      launch(`worker-${i}`, ['worker', ...common, '--worker-id', `worker-${i}`, '--backend', 'wasm']);
    const urls = new Map<string, string>();
    for (const [name, child] of children) {
      const m = await waitForLine(name, logs.get(name)!, child, /metrics on (http:\/\/\S+\/metrics)/, 60_000);
      urls.set(name, m[1]!);
    }
    return { urls, logs, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The samples of a Prometheus text exposition: series (name{labels}) -> value. */
export function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** Sum of the samples of one metric name (any labels). */
export function total(samples: Map<string, number>, name: string): number {
  let s = 0;
  for (const [k, v] of samples) if (k === name || k.startsWith(`${name}{`)) s += v;
  return s;
}

export async function fetchText(url: string): Promise<{ status: number; text: string; type: string | null }> {
  const res = await fetch(url);
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
}

export async function poll<T>(what: string, ms: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(
    `timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`,
  );
}
