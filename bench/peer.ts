/**
 * The native TensorFlow step against PyTorch on the same work: bench/backbone.ts's step (forward + backward of the
 * frozen t5-small-shaped T5 to the input embeddings, batch 8 x 128 source tokens) run by promptmesh on the `node`
 * backend and by transformers' T5ForConditionalGeneration (bench/peer_torch.py, float32 on CPU), on one checkpoint
 * written to a temp folder, with the same ids, labels and thread count.
 *
 *   npm run bench -- peer [--rounds 3] [--steps 3] [--threads 2] [--batch 8] [--src-len 128] [--tgt-len 128,4]
 *                        [--python python3] [--profile] [--json]
 *
 * Each side runs in its own child process (1 warm-up + N timed steps, reporting its min step, loss and peak RSS),
 * alternating promptmesh then torch for R rounds, so drift on a shared machine hits both sides alike; the summary is
 * the median over rounds. Both children get the same allocator and thread environment (peerEnv). --profile adds
 * one profiled step per side in the last round and prints each side's most expensive ops.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { BackendUnavailableError, describeBackend, selectBackend } from '../src/backend/index.js';
import { MALLOC_ENV } from '../src/cli/worker-env.js';
import { makeTinyT5, writeT5Checkpoint } from '../src/model/checkpoint/index.js';
import { loadT5Model } from '../src/model/load-t5.js';
import { backboneStep, baseline } from './backbone.js';

/** Targets from the issue, printed beside the numbers. */
const TARGETS = { stepRatio: 1.1, memRatio: 1.2, matmulFraction: 0.6 };
/** Same weights and same math: float32 summation order alone moves the loss by ~1e-6 relative. */
const LOSS_TOLERANCE = 1e-4;

const here = path.dirname(fileURLToPath(import.meta.url));
const BENCH_MAIN = path.join(here, 'main.js');
// The Python side is not compiled: from dist/bench/ it is two folders up, in the source tree's bench/.
const PEER_TORCH = path.resolve(here, '..', '..', 'bench', 'peer_torch.py');
const PIP_INSTALL =
  'pip install --retries 0 torch transformers safetensors (or bash scripts/setup.sh --python-peers)';

const USAGE =
  'npm run bench -- peer [--rounds 3] [--steps 3] [--threads 2] [--batch 8] [--src-len 128] [--tgt-len 128,4] ' +
  '[--python python3] [--profile] [--json]';

/** What each child prints as its one JSON line on stdout. */
interface SideResult {
  side: 'promptmesh' | 'torch';
  tgtLen: number;
  stepMs: number;
  stepsMs: number[];
  loss: number;
  peakRssMb: number;
  loadPeakRssMb: number;
  loadedRssMb: number;
  stepPeakRssMb: number | null;
  // promptmesh only: the step's matmul FLOPs and the backend's plain 2-D matmul rate in the same process.
  gflopPerStep?: number;
  matmulGflops?: number;
  matmulFraction?: number;
  backend?: string;
  /** With --profile: one extra step, split by op (self time, ms), largest first. */
  profile?: ProfileResult;
  // torch only
  torch?: string;
  transformers?: string;
  attnImplementation?: string | null;
}

/**
 * The environment both children run in: the malloc settings promptmesh gives its own workers (MALLOC_ENV keeps
 * freed activation buffers in the heap instead of unmapping and faulting them back in every op), OpenMP waiting
 * passively (its default spin burns the cores that other processes of a shared machine need, then waits on its own
 * descheduled threads), the same thread count on both sides, and OPENBLAS_CORETYPE removed: this workplace sets it
 * and it halves OpenBLAS's speed, which would favour whichever side does not use OpenBLAS.
 */
export function peerEnv(threads: number, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...base,
    ...MALLOC_ENV,
    OMP_WAIT_POLICY: 'PASSIVE',
    OMP_NUM_THREADS: String(threads),
    TF_NUM_INTRAOP_THREADS: String(threads),
    TF_NUM_INTEROP_THREADS: '1',
  };
  delete env.OPENBLAS_CORETYPE;
  return env;
}

function procStatusKb(field: string): number {
  const line = fs
    .readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  if (!line) throw new Error(`/proc/self/status has no ${field} line (peer needs Linux)`);
  return Number(line.split(/\s+/)[1]);
}

/** Resets VmHWM (Linux >= 4.0) so the next reading covers the steps alone; false where the kernel refuses. */
function resetPeakRss(): boolean {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

const mb = (kb: number) => Number((kb / 1024).toFixed(1));

/**
 * The CPU the bench ran on, printed with the numbers: the ratio depends on it (on an AMD EPYC, PyTorch's MKL ran
 * the step's matmuls slower than TensorFlow's oneDNN; on the Intel machine of earlier runs, faster).
 */
function cpuModel(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model.trim() || 'unknown CPU'} (${cpus.length} CPUs)`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new RangeError(`--${flag} must be a positive integer, got '${value}'`);
  return n;
}

/** Child mode `probe`: can the native backend load here? One JSON line either way. */
async function probeChild(): Promise<void> {
  try {
    const choice = await selectBackend({ requested: 'node' });
    console.log(JSON.stringify({ available: true, backend: describeBackend(choice) }));
  } catch (err) {
    if (!(err instanceof BackendUnavailableError)) throw err;
    console.log(JSON.stringify({ available: false, why: err.why }));
  }
}

/** Child mode `node`: bench/backbone.ts's step on the native backend, on the checkpoint in `dir`. */
async function nodeChild(
  dir: string,
  B: number,
  L: number,
  T: number,
  steps: number,
  profile: boolean,
): Promise<void> {
  const choice = await selectBackend({ requested: 'node', log: (l) => console.error(l) });
  const { model } = loadT5Model(dir);
  const { dModel, dFf } = model.config;
  const before = baseline(dModel, dFf, B * L);
  const loadPeakKb = procStatusKb('VmHWM');
  const loadedKb = procStatusKb('VmRSS');
  const reset = resetPeakRss();

  const work = backboneStep(model, B, L, T);
  let loss = work.step(); // warm-up: TensorFlow picks its oneDNN kernels and caches weight layouts
  const times: number[] = [];
  for (let s = 0; s < steps; s++) {
    const t0 = performance.now();
    loss = work.step();
    times.push(performance.now() - t0);
  }
  const stepPeakKb = procStatusKb('VmHWM');
  const after = baseline(dModel, dFf, B * L);
  const ms = Math.min(...times);
  const matmulGflops = Math.max(before, after);
  const row: SideResult = {
    side: 'promptmesh',
    tgtLen: T,
    stepMs: Number(ms.toFixed(1)),
    stepsMs: times.map((t) => Number(t.toFixed(1))),
    loss,
    peakRssMb: mb(Math.max(loadPeakKb, stepPeakKb)),
    loadPeakRssMb: mb(loadPeakKb),
    loadedRssMb: mb(loadedKb),
    stepPeakRssMb: reset ? mb(stepPeakKb) : null,
    gflopPerStep: Number((work.flops / 1e9).toFixed(2)),
    matmulGflops: Number(matmulGflops.toFixed(2)),
    matmulFraction: Number((work.flops / (ms * 1e6) / matmulGflops).toFixed(3)),
    backend: describeBackend(choice),
  };
  if (profile) row.profile = await profileStep(work.step);
  work.dispose();
  model.dispose();
  if (tf.memory().numTensors !== 0)
    console.error(`peer: ${tf.memory().numTensors} tensors left after the step`);
  console.log(JSON.stringify(row));
}

interface ProfileResult {
  stepMs: number;
  /** Time inside the ops listed; the rest of stepMs is framework overhead (JS, autograd, Python). */
  opMs: number;
  /**
   * promptmesh only: most bytes held by live tensors at once during the step, weights included, as tfjs counts
   * them: a reshape's output shares its input's buffer in TensorFlow but counts again, so an upper bound.
   */
  peakTensorMb?: number;
  /** gflop where known: promptmesh counts it from BatchMatMul's shapes, torch's profiler from its own tables. */
  ops: { name: string; ms: number; calls: number; gflop?: number }[];
}

const PROFILE_TOP = 12;

/**
 * One step under tf.profile, time summed per registered kernel. tfjs-node runs each kernel synchronously, so a
 * kernel's wall time is its cost; customGrad scopes are left out because their time includes their kernels.
 * Matmuls are split by rank (2-D: the linear layers and the LM head; 4-D: attention) with their FLOPs, counted as
 * 2 x size(A) x columns(C), which holds whether or not A is transposed.
 */
async function profileStep(step: () => number): Promise<ProfileResult> {
  const t0 = performance.now();
  const info = await tf.profile(() => {
    step();
  });
  const stepMs = performance.now() - t0;
  const byName = new Map<string, { ms: number; calls: number; flop: number }>();
  for (const k of info.kernels) {
    if (!tf.getKernel(k.name, tf.getBackend())) continue;
    let name = k.name;
    let flop = 0;
    const a = k.inputShapes[0];
    const out = k.outputShapes[0];
    if (k.name === 'BatchMatMul' && a && out) {
      name = `BatchMatMul ${a.length}-D`;
      flop = 2 * a.reduce((x, y) => x * y, 1) * out[out.length - 1]!;
    }
    const e = byName.get(name) ?? { ms: 0, calls: 0, flop: 0 };
    e.ms += k.kernelTimeMs as number;
    e.calls += 1;
    e.flop += flop;
    byName.set(name, e);
  }
  const ops = [...byName].map(([name, e]) => ({
    name,
    ms: Number(e.ms.toFixed(1)),
    calls: e.calls,
    ...(e.flop > 0 ? { gflop: Number((e.flop / 1e9).toFixed(2)) } : {}),
  }));
  ops.sort((a, b) => b.ms - a.ms);
  return {
    stepMs: Number(stepMs.toFixed(1)),
    opMs: Number(ops.reduce((a, o) => a + o.ms, 0).toFixed(1)),
    peakTensorMb: Number((info.peakBytes / 2 ** 20).toFixed(1)),
    ops: ops.slice(0, PROFILE_TOP),
  };
}

interface ChildOutput {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runChild(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<ChildOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function lastJsonLine(stdout: string): string | undefined {
  return stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
}

/** The child's last JSON line on stdout; an error naming the command and its stderr tail otherwise. */
function lastJson<T>(out: ChildOutput, what: string): T {
  const line = lastJsonLine(out.stdout);
  if (out.code !== 0 || !line) {
    const tail = out.stderr.trim().split('\n').slice(-15).join('\n');
    throw new Error(
      `peer: ${what} exited with code ${out.code} and no result line; its stderr ends:\n${tail}`,
    );
  }
  return JSON.parse(line) as T;
}

interface Summary {
  tgtLen: number;
  node: SideResult[];
  torch: SideResult[];
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      child: { type: 'string' },
      model: { type: 'string' },
      batch: { type: 'string', default: '8' },
      'src-len': { type: 'string', default: '128' },
      'tgt-len': { type: 'string', default: '128,4' },
      steps: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '3' },
      threads: { type: 'string', default: '2' },
      python: { type: 'string', default: 'python3' },
      profile: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const B = positiveInt(values.batch, 'batch');
  const L = positiveInt(values['src-len'], 'src-len');
  const steps = positiveInt(values.steps, 'steps');
  const rounds = positiveInt(values.rounds, 'rounds');
  const threads = positiveInt(values.threads, 'threads');
  const tgtLens = values['tgt-len'].split(',').map((t) => positiveInt(t, 'tgt-len'));

  if (values.child === 'probe') return probeChild();
  if (values.child === 'node') {
    if (!values.model) throw new Error('peer --child node needs --model DIR');
    return nodeChild(values.model, B, L, tgtLens[0]!, steps, values.profile);
  }
  if (values.child !== undefined) throw new Error(`peer: unknown --child '${values.child}' (node, probe)`);

  const env = peerEnv(threads);
  const log = (line: string) => console.error(line);

  // Both sides must be runnable before a minute goes into writing the checkpoint.
  const pyCheck = await runChild(values.python, [PEER_TORCH, '--check'], env).catch(
    (err: Error): ChildOutput => ({ code: -1, stdout: '', stderr: err.message }),
  );
  if (pyCheck.code !== 0) {
    const missing = pyCheck.code === 2 ? lastJsonLine(pyCheck.stdout) : undefined;
    const why = missing
      ? (JSON.parse(missing) as { missing: string }).missing
      : pyCheck.stderr.trim().split('\n').pop();
    console.error(
      `peer: the PyTorch side cannot run (${values.python}: ${why}); install it with: ${PIP_INSTALL}`,
    );
    process.exitCode = 2;
    return;
  }
  const versions = lastJson<{ torch: string; transformers: string }>(pyCheck, `${values.python} --check`);
  const probe = lastJson<{ available: boolean; backend?: string; why?: string }>(
    await runChild(process.execPath, [BENCH_MAIN, 'peer', '--child', 'probe'], env),
    'the native backend probe',
  );
  if (!probe.available) {
    console.error(
      `peer: the native TensorFlow backend cannot load (${probe.why}); \`bash scripts/setup.sh\` installs it`,
    );
    process.exitCode = 2;
    return;
  }

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-peer-'));
  try {
    const t0 = performance.now();
    const { config, tensors } = makeTinyT5({
      variant: 'v1',
      vocabSize: 32128,
      dModel: 512,
      dKv: 64,
      numHeads: 8,
      dFf: 2048,
      numLayers: 6,
      seed: 1,
    });
    writeT5Checkpoint(dir, config, tensors);
    tensors.clear();
    log(
      `peer: t5-small-shaped checkpoint in ${dir} (${((performance.now() - t0) / 1000).toFixed(1)} s); ` +
        `${probe.backend} vs torch ${versions.torch} + transformers ${versions.transformers}, ${threads} threads, ` +
        `on ${cpuModel()}`,
    );

    const common = ['--batch', String(B), '--src-len', String(L), '--steps', String(steps)];
    const summaries: Summary[] = tgtLens.map((tgtLen) => ({ tgtLen, node: [], torch: [] }));
    for (let r = 0; r < rounds; r++) {
      // Profiling slows a step down, so it gets its own extra step, in the last round only.
      const prof = values.profile && r === rounds - 1 ? ['--profile'] : [];
      for (const s of summaries) {
        const T = String(s.tgtLen);
        const node = lastJson<SideResult>(
          await runChild(
            process.execPath,
            [BENCH_MAIN, 'peer', '--child', 'node', '--model', dir, ...common, '--tgt-len', T, ...prof],
            env,
          ),
          `the promptmesh child (tgt ${T})`,
        );
        const torch = lastJson<SideResult>(
          await runChild(
            values.python,
            [PEER_TORCH, '--model', dir, ...common, '--tgt-len', T, '--threads', String(threads), ...prof],
            env,
          ),
          `the torch child (tgt ${T})`,
        );
        const rel = Math.abs(node.loss - torch.loss) / Math.abs(torch.loss);
        if (!(rel <= LOSS_TOLERANCE)) {
          throw new Error(
            `peer: the two sides disagree on the loss at tgt ${T}: promptmesh ${node.loss}, torch ${torch.loss} ` +
              `(relative difference ${rel.toExponential(2)} > ${LOSS_TOLERANCE}); same weights and ids should ` +
              'give the same math, so one side computes a different model',
          );
        }
        s.node.push(node);
        s.torch.push(torch);
        log(
          `peer: round ${r + 1}/${rounds} tgt ${T}: promptmesh ${node.stepMs} ms, torch ${torch.stepMs} ms ` +
            `(ratio ${(node.stepMs / torch.stepMs).toFixed(3)})`,
        );
      }
    }
    for (const s of summaries) report(s, { B, L, threads, rounds, steps, json: values.json });
    if (values.profile) for (const s of summaries) reportProfile(s, values.json);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function report(
  s: Summary,
  o: { B: number; L: number; threads: number; rounds: number; steps: number; json: boolean },
): void {
  const med = (rows: SideResult[], f: (r: SideResult) => number, digits = 1) =>
    Number(median(rows.map(f)).toFixed(digits));
  const nodeMs = med(s.node, (r) => r.stepMs);
  const torchMs = med(s.torch, (r) => r.stepMs);
  const nodeRss = med(s.node, (r) => r.peakRssMb);
  const torchRss = med(s.torch, (r) => r.peakRssMb);
  const stepPeak = (rows: SideResult[]) =>
    rows.every((r) => r.stepPeakRssMb !== null) ? med(rows, (r) => r.stepPeakRssMb!) : null;
  const nodeLoss = s.node[0]!.loss;
  const torchLoss = s.torch[0]!.loss;
  const fraction = med(s.node, (r) => r.matmulFraction!, 3);
  const row = {
    bench: 'peer',
    config: 't5-small',
    cpu: cpuModel(),
    batch: o.B,
    srcLen: o.L,
    tgtLen: s.tgtLen,
    threads: o.threads,
    rounds: o.rounds,
    steps: o.steps,
    promptmeshStepMs: nodeMs,
    torchStepMs: torchMs,
    stepRatio: Number((nodeMs / torchMs).toFixed(3)),
    stepRatioTarget: TARGETS.stepRatio,
    promptmeshPeakRssMb: nodeRss,
    torchPeakRssMb: torchRss,
    memRatio: Number((nodeRss / torchRss).toFixed(3)),
    memRatioTarget: TARGETS.memRatio,
    promptmeshLoadPeakRssMb: med(s.node, (r) => r.loadPeakRssMb),
    torchLoadPeakRssMb: med(s.torch, (r) => r.loadPeakRssMb),
    promptmeshStepPeakRssMb: stepPeak(s.node),
    torchStepPeakRssMb: stepPeak(s.torch),
    promptmeshLoss: nodeLoss,
    torchLoss,
    lossRelDiff: Number((Math.abs(nodeLoss - torchLoss) / Math.abs(torchLoss)).toExponential(2)),
    matmulFraction: fraction,
    matmulFractionTarget: TARGETS.matmulFraction,
    matmulGflops: med(s.node, (r) => r.matmulGflops!),
    gflopPerStep: s.node[0]!.gflopPerStep!,
    promptmeshStepMsRounds: s.node.map((r) => r.stepMs),
    torchStepMsRounds: s.torch.map((r) => r.stepMs),
    backend: s.node[0]!.backend,
    torch: s.torch[0]!.torch,
    transformers: s.torch[0]!.transformers,
    torchAttention: s.torch[0]!.attnImplementation,
  };
  if (o.json) {
    console.log(JSON.stringify(row));
    return;
  }
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const stepPeaks =
    row.promptmeshStepPeakRssMb !== null && row.torchStepPeakRssMb !== null
      ? `; during the steps ${row.promptmeshStepPeakRssMb} vs ${row.torchStepPeakRssMb} MB`
      : '';
  console.log(
    [
      `t5-small B=${o.B} src=${o.L} tgt=${s.tgtLen}, ${o.threads} threads, median over ${o.rounds} rounds of each side's min of ${o.steps} steps:`,
      `  step      promptmesh ${nodeMs.toFixed(1)} ms, torch ${torchMs.toFixed(1)} ms: ratio ${row.stepRatio} ` +
        `(target <= ${TARGETS.stepRatio}: ${verdict(row.stepRatio <= TARGETS.stepRatio)}); ` +
        `rounds ${row.promptmeshStepMsRounds.join('/')} vs ${row.torchStepMsRounds.join('/')}`,
      `  peak RSS  promptmesh ${nodeRss} MB, torch ${torchRss} MB: ratio ${row.memRatio} ` +
        `(target <= ${TARGETS.memRatio}: ${verdict(row.memRatio <= TARGETS.memRatio)}); ` +
        `loading ${row.promptmeshLoadPeakRssMb} vs ${row.torchLoadPeakRssMb} MB${stepPeaks}`,
      `  loss      promptmesh ${nodeLoss}, torch ${torchLoss}: relative difference ${row.lossRelDiff}`,
      `  matmul    the promptmesh step runs at ${fraction} of the native backend's plain 2-D matmul rate ` +
        `(${row.gflopPerStep} GFLOP per step, matmul ${row.matmulGflops} GFLOP/s) ` +
        `(target >= ${TARGETS.matmulFraction}: ${verdict(fraction >= TARGETS.matmulFraction)})`,
    ].join('\n'),
  );
}

function reportProfile(s: Summary, json: boolean): void {
  for (const r of [s.node.at(-1)!, s.torch.at(-1)!]) {
    const p = r.profile;
    if (!p) continue;
    if (json) {
      console.log(JSON.stringify({ bench: 'peer', profile: r.side, tgtLen: s.tgtLen, ...p }));
      continue;
    }
    console.log(
      `profile ${r.side} tgt=${s.tgtLen}: one step ${p.stepMs} ms, ${p.opMs} ms of it in ops (self time)` +
        `${p.peakTensorMb ? `, live tensors peak at ${p.peakTensorMb} MB` : ''}; largest:`,
    );
    for (const o of p.ops) {
      const rate = o.gflop ? `  ${o.gflop} GFLOP, ${(o.gflop / (o.ms / 1000)).toFixed(1)} GFLOP/s` : '';
      console.log(`  ${o.name.padEnd(48)} ${o.ms.toFixed(1).padStart(8)} ms  x${o.calls}${rate}`);
    }
  }
}
