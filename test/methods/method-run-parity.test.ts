/**
 * `promptmesh method run` against an independent implementation of each method's released math
 * (test/helpers/method_reference.py: PyTorch + transformers' T5, written from the released ATTEMPT and TPT code and
 * from METHODS.md for SPT), on a tiny random checkpoint and seeded random parameters. Prompts, ATTEMPT's weights and
 * the loss must agree to float32 rounding, retrieved indices exactly. Also: the errors `method run` gives for a
 * missing tensor, a wrong shape and bad ids, a bank version as --params, and the --help example.
 * The parity tests skip with a message when python3 lacks torch or transformers (CI installs them).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DirectoryStore, PromptBank } from '../../src/bank/index.js';
import { command as methodRunCommand } from '../../src/cli/commands/method-run.js';
import { rngFor } from '../../src/data/rng.js';
import { methodFactory } from '../../src/methods/index.js';
import { tinyT5Config, writeSafetensors } from '../../src/model/checkpoint/index.js';
import { saveTrainedState } from '../../src/train/trained-state.js';
import { testBackend } from '../helpers/backend.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const MAIN = path.resolve('dist/src/cli/main.js');
const REFERENCE = path.resolve('test/helpers/method_reference.py');
const TINY = { variant: 'v1.1', seed: 11, vocabSize: 96, dModel: 16 } as const;
const D = tinyT5Config(TINY).dModel;
const V = tinyT5Config(TINY).vocabSize;

/** Agreement asked of float32 results computed in two frameworks (different summation orders). */
const PROMPT_TOL = 2e-6;
const WEIGHT_TOL = 1e-6;
const LOSS_REL_TOL = 1e-5;

interface RunResult {
  prompts: number[][][];
  loss: number;
  weights: number[][] | null;
  retrieved: number[][] | null;
}

function pythonPeers(): string | undefined {
  const r = spawnSync('python3', ['-c', 'import torch, transformers, safetensors'], { encoding: 'utf8' });
  return r.status === 0
    ? undefined
    : `python3 cannot import torch, transformers and safetensors (bash scripts/setup.sh --python-peers installs them): ${r.stderr.trim().split('\n').at(-1)}`;
}

let tmp: string;
let ckpt: string;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-method-run-'));
  ckpt = writeTinyCheckpoint(TINY);
});

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.rmSync(ckpt, { recursive: true, force: true });
});

/**
 * Every tensor the method's describe() lists for `config` and `tasks`, with seeded random values: N(0, scale^2)
 * for prompts, banks and memories; the ATTEMPT LayerNorm near 1 / 0 but not at it (so gamma and beta matter).
 */
function randomParams(method: string, config: Record<string, unknown>, tasks: string[], seed: number) {
  const factory = methodFactory(method);
  const specs = factory.describe(factory.parseConfig(config), { dModel: D, vocabSize: V, tasks });
  const out = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
  for (const s of specs) {
    const rng = rngFor(seed, method, s.name);
    const size = s.shape.reduce((a, b) => a * b, 1);
    const normal = () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
    const scale = s.name.startsWith('attention.') ? 0.3 : 1;
    const base = s.name === 'attention.ln.gamma' ? 1 : 0;
    out.set(s.name, {
      dtype: 'F32',
      shape: s.shape,
      data: Float32Array.from({ length: size }, () => base + scale * normal()),
    });
  }
  return out;
}

function writeParams(name: string, tensors: ReturnType<typeof randomParams>): string {
  const file = path.join(tmp, `${name}.safetensors`);
  writeSafetensors(file, tensors);
  return file;
}

interface Case {
  method: string;
  config: Record<string, unknown>;
  tasks: string[];
  inputs: number[][];
  labels: number[][];
  /** Flags given to both implementations as they are. */
  extra?: string[];
}

function exampleArgs(c: Case): string[] {
  return [
    ...c.tasks.flatMap((t) => ['--task', t]),
    ...c.inputs.flatMap((ids) => ['--input-ids', ids.join(',')]),
    ...c.labels.flatMap((ids) => ['--labels', ids.join(',')]),
    ...(c.extra ?? []),
  ];
}

function methodRun(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [MAIN, 'method', 'run', '--backend', testBackend(), ...args], {
    encoding: 'utf8',
    env: { ...process.env, PROMPTMESH_BACKEND: '' },
  });
}

function runBoth(c: Case, params: string): { got: RunResult; ref: RunResult } {
  const config = JSON.stringify(c.config);
  const args = ['--method', c.method, '--params', params, '--config', config, ...exampleArgs(c)];
  const mine = methodRun(['--checkpoint', ckpt, ...args, '--json']);
  assert.equal(mine.status, 0, mine.stderr);
  const ref = spawnSync('python3', [REFERENCE, ckpt, ...args], { encoding: 'utf8' });
  assert.equal(ref.status, 0, ref.stderr);
  return { got: JSON.parse(mine.stdout) as RunResult, ref: JSON.parse(ref.stdout) as RunResult };
}

function maxAbsDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length, 'lengths differ');
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
}

function compare(got: RunResult, ref: RunResult, t: { diagnostic(m: string): void }): void {
  assert.deepEqual(
    got.prompts.map((e) => [e.length, e[0]?.length]),
    ref.prompts.map((e) => [e.length, e[0]?.length]),
    'prompt shapes',
  );
  const dPrompt = maxAbsDiff(got.prompts.flat(2), ref.prompts.flat(2));
  const dLoss = Math.abs(got.loss - ref.loss) / Math.abs(ref.loss);
  assert.deepEqual(got.retrieved, ref.retrieved, 'retrieved indices');
  assert.equal(got.weights === null, ref.weights === null, 'weights presence');
  const dWeights = got.weights ? maxAbsDiff(got.weights.flat(), ref.weights!.flat()) : 0;
  t.diagnostic(
    `max |prompt diff| ${dPrompt.toExponential(2)}, loss ${got.loss} vs ${ref.loss} (rel ${dLoss.toExponential(2)}), ` +
      `max |weight diff| ${dWeights.toExponential(2)}`,
  );
  assert.ok(dPrompt <= PROMPT_TOL, `prompts differ by ${dPrompt}`);
  assert.ok(dWeights <= WEIGHT_TOL, `weights differ by ${dWeights}`);
  assert.ok(dLoss <= LOSS_REL_TOL, `loss ${got.loss} vs reference ${ref.loss}`);
}

/** Examples of different lengths (so padding and the mask are exercised) and two tasks. */
const INPUTS = [
  [13, 7, 42, 9, 55, 31, 1],
  [5, 88, 17, 1],
  [64, 3, 29, 71, 40, 1],
];
const LABELS = [
  [5, 1],
  [6, 12, 1],
  [7, 1],
];
const TASKS = ['rte', 'mrpc', 'rte'];

describe('method run equals the released math (PyTorch + transformers)', { skip: pythonPeers() }, () => {
  test('prompt tuning: one prompt per task, prepended', (t) => {
    const c: Case = {
      method: 'prompt-tuning',
      config: { promptLength: 4, perTask: true },
      tasks: TASKS,
      inputs: INPUTS,
      labels: LABELS,
    };
    const params = writeParams('pt', randomParams(c.method, c.config, ['rte', 'mrpc'], 1));
    const { got, ref } = runBoth(c, params);
    assert.equal(got.weights, null);
    assert.equal(got.retrieved, null);
    // The prompt of each example is its task's tensor, unchanged.
    assert.ok(got.prompts[0]!.flat().every((x, i) => x === got.prompts[2]!.flat()[i]));
    compare(got, ref, t);
  });

  test('ATTEMPT: attention over the sources and the target, mixed and added to the target (ATTEMPT-m)', (t) => {
    const c: Case = {
      method: 'attempt',
      config: { promptLength: 3, attentionDim: 5, sources: ['mnli', 'sst2', 'qnli'], multiTask: true },
      tasks: TASKS,
      inputs: INPUTS,
      labels: LABELS,
    };
    const params = writeParams('attempt', randomParams(c.method, c.config, ['rte', 'mrpc'], 2));
    const { got, ref } = runBoth(c, params);
    assert.equal(got.weights!.length, 3);
    assert.equal(got.weights![0]!.length, 4, 'three sources and the target');
    // Not a degenerate test: the examples weight the candidates differently, and not one-hot.
    assert.ok(maxAbsDiff(got.weights![0]!, got.weights![2]!) > 1e-4, JSON.stringify(got.weights));
    assert.ok(Math.max(...got.weights!.flat()) < 0.99, JSON.stringify(got.weights));
    compare(got, ref, t);
  });

  test('ATTEMPT: one target prompt, a given temperature', (t) => {
    const c: Case = {
      method: 'attempt',
      config: { promptLength: 2, attentionDim: 4, sources: ['a', 'b'], temperature: 3 },
      tasks: ['rte'],
      inputs: INPUTS.slice(0, 2),
      labels: LABELS.slice(0, 2),
    };
    const params = writeParams('attempt1', randomParams(c.method, c.config, ['rte'], 3));
    const { got, ref } = runBoth(c, params);
    compare(got, ref, t);
  });

  test('ATTEMPT poolPadding and TPT maskPadding false: the released fixed-length padding', (t) => {
    const att: Case = {
      method: 'attempt',
      config: { promptLength: 3, attentionDim: 5, sources: ['mnli', 'sst2'], poolPadding: true },
      tasks: ['rte'],
      inputs: INPUTS,
      labels: LABELS,
      extra: ['--max-source-length', '9'],
    };
    const a = runBoth(att, writeParams('attempt-pad', randomParams('attempt', att.config, ['rte'], 12)));
    compare(a.got, a.ref, t);
    const tp: Case = {
      method: 'tpt',
      config: { bankSize: 24, topK: 5, taskPromptLength: 3, maskPadding: false },
      tasks: TASKS,
      inputs: INPUTS,
      labels: LABELS,
      extra: ['--max-source-length', '9'],
    };
    const b = runBoth(tp, writeParams('tpt-pad', randomParams('tpt', tp.config, ['rte', 'mrpc'], 13)));
    compare(b.got, b.ref, t);
  });

  test('TPT stage 2: top-k bank rows in bank order, then the task prompt', (t) => {
    const c: Case = {
      method: 'tpt',
      config: { bankSize: 24, topK: 5, taskPromptLength: 3 },
      tasks: TASKS,
      inputs: INPUTS,
      labels: LABELS,
    };
    const params = writeParams('tpt', randomParams(c.method, c.config, ['rte', 'mrpc'], 4));
    const { got, ref } = runBoth(c, params);
    assert.equal(got.retrieved!.length, 3);
    assert.ok(got.retrieved!.every((r) => r.length === 5 && r.every((x, i) => i === 0 || x > r[i - 1]!)));
    assert.notDeepEqual(got.retrieved![0], got.retrieved![1], 'examples retrieve different rows');
    compare(got, ref, t);
  });

  test('TPT stage 2 with a bank per task (tuneBank), and stage 1 (bank only)', (t) => {
    const tuned: Case = {
      method: 'tpt',
      config: { bankSize: 12, topK: 4, taskPromptLength: 2, tuneBank: true },
      tasks: TASKS,
      inputs: INPUTS,
      labels: LABELS,
    };
    const a = runBoth(tuned, writeParams('tpt-tuned', randomParams('tpt', tuned.config, ['rte', 'mrpc'], 5)));
    compare(a.got, a.ref, t);
    const bank: Case = { ...tuned, config: { bankSize: 12, topK: 4, stage: 'bank' } };
    const b = runBoth(bank, writeParams('tpt-bank', randomParams('tpt', bank.config, ['rte', 'mrpc'], 6)));
    assert.equal(b.got.prompts[0]!.length, 4, 'stage 1 prepends the retrieved rows only');
    compare(b.got, b.ref, t);
  });

  test('SPT: memory slots retrieved by the discrete prompt, mixed, before the parametric prompt', (t) => {
    const c: Case = {
      method: 'spt',
      config: { memorySlots: 6, memoryLength: 2, topK: 3, promptLength: 3, tau: 0.5 },
      tasks: TASKS,
      inputs: INPUTS,
      labels: LABELS,
    };
    const params = writeParams('spt', randomParams(c.method, c.config, ['rte', 'mrpc'], 7));
    const { got, ref } = runBoth(c, params);
    assert.equal(got.retrieved![0]!.length, 3);
    // The query is the example's own discrete prompt: two examples of one task retrieve different slots.
    assert.notDeepEqual(got.retrieved![0], got.retrieved![2]);
    compare(got, ref, t);
  });
});

describe('method run: inputs and errors', () => {
  const c: Case = {
    method: 'prompt-tuning',
    config: { promptLength: 4, perTask: true },
    tasks: ['rte', 'mrpc'],
    inputs: INPUTS.slice(0, 2),
    labels: LABELS.slice(0, 2),
  };
  const base = () => ['--checkpoint', ckpt, '--method', c.method, '--config', JSON.stringify(c.config)];

  test('a bank version, a bank export folder and a train --out folder give what the same tensors in a file give', async () => {
    const tensors = randomParams(c.method, c.config, c.tasks, 8);
    const file = writeParams('bank-src', tensors);
    const bankDir = path.join(tmp, 'bank');
    const bank = new PromptBank(new DirectoryStore(bankDir, { create: true }));
    const extra = { dtype: 'F32' as const, shape: [4, D], data: new Float32Array(4 * D).fill(9) };
    await bank.commit({
      job: 'pt',
      parent: null,
      step: 3,
      method: 'prompt-tuning',
      config: c.config,
      // optimizer moments ride along in a bank version; method run ignores them
      tensors: new Map([...tensors, ['optim.m/prompt.rte', extra]]),
      tags: ['best'],
    });
    const exported = path.join(tmp, 'exported');
    await bank.export('best', exported);
    await bank.close();
    // A train --out folder: its manifest gives the method options and tasks (no --config).
    const trained = path.join(tmp, 'trained');
    saveTrainedState(trained, {
      manifest: {
        job: 'test',
        stage: 'only',
        method: c.method,
        methodConfig: { name: c.method, ...c.config },
        tasks: c.tasks,
        step: 3,
        tensors: Object.fromEntries([...tensors].map(([k, t]) => [k, { shape: t.shape, trainable: true }])),
        metrics: {},
        backbone: { dModel: D, vocabSize: V },
        createdAt: new Date(0).toISOString(),
      },
      tensors,
    });
    const run = (args: string[]) => {
      const r = methodRun([...args, ...exampleArgs(c), '--json']);
      assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
      return JSON.parse(r.stdout) as RunResult;
    };
    const fromFile = run([...base(), '--params', file]);
    assert.deepEqual(run([...base(), '--bank', bankDir, '--params', 'best']), fromFile);
    assert.deepEqual(run([...base(), '--params', exported]), fromFile);
    assert.deepEqual(run(['--checkpoint', ckpt, '--method', c.method, '--params', trained]), fromFile);
  });

  test('a missing tensor is named, with what the method needs', () => {
    const tensors = randomParams(c.method, c.config, c.tasks, 9);
    tensors.delete('prompt.mrpc');
    const r = methodRun([...base(), '--params', writeParams('missing', tensors), ...exampleArgs(c)]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /MissingMethodTensorError: prompt-tuning: no tensor 'prompt\.mrpc'/);
    assert.match(r.stderr, new RegExp(`needs prompt\\.rte \\[4, ${D}\\], prompt\\.mrpc \\[4, ${D}\\]`));
  });

  test('a wrong shape names the tensor and both shapes', () => {
    const tensors = randomParams(c.method, { ...c.config, promptLength: 5 }, c.tasks, 10);
    const r = methodRun([...base(), '--params', writeParams('shape', tensors), ...exampleArgs(c)]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`tensor 'prompt\\.rte' has shape \\[5, ${D}\\] but this config needs \\[4, ${D}\\]`),
    );
  });

  test('bad ids, a missing label and an unknown method are usage errors', () => {
    const params = writeParams('ok', randomParams(c.method, c.config, c.tasks, 11));
    const cases: [string[], RegExp][] = [
      [['--task', 'rte', '--input-ids', '13,x,1', '--labels', '5,1'], /--input-ids: 'x' is not an integer/],
      [
        ['--task', 'rte', '--input-ids', `13,${V},1`, '--labels', '5,1'],
        /id 96 is outside the vocabulary \[0, 96\)/,
      ],
      [
        ['--task', 'rte', '--input-ids', '13,1', '--input-ids', '5,1', '--labels', '5,1'],
        /one --labels per --input-ids/,
      ],
      [
        ['--task', 'rte', '--task', 'mrpc', '--task', 'rte', '--input-ids', '13,1', '--labels', '5,1'],
        /--task once or once per example/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = methodRun([...base(), '--params', params, ...args]);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    const r = methodRun([
      '--checkpoint',
      ckpt,
      '--method',
      'nope',
      '--params',
      params,
      '--task',
      'rte',
      '--input-ids',
      '1',
      '--labels',
      '1',
    ]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown method 'nope'; known methods: attempt, prompt-tuning, spt, tpt/);
  });

  test("--help's first example runs as printed", () => {
    const example = methodRunCommand.examples![0]!;
    const r = spawnSync('bash', ['-c', example.replace(/^promptmesh /, `"${process.execPath}" "${MAIN}" `)], {
      encoding: 'utf8',
      env: { ...process.env, PROMPTMESH_BACKEND: testBackend() },
    });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as RunResult;
    assert.ok(Number.isFinite(out.loss));
    assert.ok(out.prompts.length >= 1);
  });
});
