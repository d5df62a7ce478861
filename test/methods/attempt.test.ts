import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { mulberry32 } from '../../src/data/rng.js';
import { parameterReport } from '../../src/methods/accounting.js';
import {
  ATTENTION_INIT_STD,
  ATTENTION_VARIANTS,
  type Attempt,
  type AttemptConfig,
  attempt,
  attemptTemperature,
  LAYER_NORM_EPS,
  parseAttemptConfig,
} from '../../src/methods/attempt/index.js';
import { MethodConfigError, type MethodParam, type PromptBatch } from '../../src/methods/method.js';
import { makeTinyT5, type TinyT5Options } from '../../src/model/checkpoint/index.js';
import { T5Model } from '../../src/model/t5/index.js';
import { testBackend } from '../helpers/backend.js';

const V11: TinyT5Options = { variant: 'v1.1', seed: 7, vocabSize: 64 };
const N = 3; // prompt length
const R = 4; // attention width
const SOURCES = ['mnli', 'sst2'];

type Inputs = Map<string, { shape: number[]; data: Float32Array }>;

/** Source prompts at the scale of the tiny model's embeddings (std ~1), deterministic per name. */
function sourceInputs(d: number, names = SOURCES, n = N): Inputs {
  const out: Inputs = new Map();
  names.forEach((name, i) => {
    const rng = mulberry32(1000 + i);
    out.set(name, { shape: [n, d], data: Float32Array.from({ length: n * d }, () => (rng() * 2 - 1) * 1.7) });
  });
  return out;
}

/** Three examples: the first unpadded, the others padded; labels of different lengths. */
function makeBatch(tasks: string[] = ['rte', 'rte', 'rte']): PromptBatch {
  return {
    inputIds: tf.tensor2d(
      [
        [5, 6, 7, 8, 9, 1],
        [9, 10, 11, 1, 0, 0],
        [12, 13, 1, 0, 0, 0],
      ],
      [3, 6],
      'int32',
    ),
    attentionMask: tf.tensor2d([
      [1, 1, 1, 1, 1, 1],
      [1, 1, 1, 1, 0, 0],
      [1, 1, 1, 0, 0, 0],
    ]) as tf.Tensor2D,
    labels: tf.tensor2d(
      [
        [3, 4, 1],
        [20, 1, 0],
        [30, 31, 1],
      ],
      [3, 3],
      'int32',
    ),
    labelMask: tf.tensor2d([
      [1, 1, 1],
      [1, 1, 0],
      [1, 1, 1],
    ]) as tf.Tensor2D,
    tasks,
  };
}

function disposeBatch(b: PromptBatch): void {
  tf.dispose([b.inputIds, b.attentionMask, b.labels, b.labelMask]);
}

function create(
  model: T5Model,
  raw: Record<string, unknown>,
  tasks: string[] = ['rte'],
  inputs: Inputs = sourceInputs(model.config.dModel),
): Attempt {
  const config = parseAttemptConfig({ promptLength: N, attentionDim: R, sources: SOURCES, ...raw });
  // maxSourceLength = makeBatch's length: with poolPadding, x_hat is the max over the batch's own padded rows.
  return attempt.create(config, { model, tasks, seed: 3, inputs, maxSourceLength: 6 }) as Attempt;
}

function lossOf(method: Attempt, model: T5Model, batch: PromptBatch): tf.Scalar {
  return tf.tidy(() => {
    const enc = method.encoderInputs(model, batch);
    return model.loss({ ...enc, labels: batch.labels, labelMask: batch.labelMask });
  });
}

function param(method: Attempt, name: string): MethodParam {
  const p = method.params.find((x) => x.name === name);
  assert.ok(p, `no param ${name} (have ${method.params.map((x) => x.name).join(', ')})`);
  return p;
}

/** Sets every trainable tensor to deterministic non-trivial values (LN away from 1/0, targets distinct). */
function randomise(method: Attempt, seed: number, scale = 1): void {
  method.params.forEach((p, i) => {
    const rng = mulberry32(seed + i);
    const base = p.name === 'attention.ln.gamma' ? 1 : 0;
    const s = p.name.startsWith('attention.ln') ? 0.5 : scale;
    const data = Float32Array.from({ length: p.variable.size }, () => base + (rng() * 2 - 1) * s);
    tf.tidy(() => p.variable.assign(tf.tensor(data, p.variable.shape)));
  });
}

// ---------- plain-JS reference of METHODS.md section 2 ----------

type M = number[][];
const matVec = (x: number[], w: M): number[] =>
  w[0]!.map((_, j) => x.reduce((s, xi, i) => s + xi * w[i]![j]!, 0));
const colMax = (rows: M): number[] => rows[0]!.map((_, j) => Math.max(...rows.map((r) => r[j]!)));
const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);

function referenceForward(
  config: AttemptConfig,
  d: number,
  embeds: number[][][],
  mask: number[][],
  sources: M[],
  targets: M[],
  mod: { down: M; up: M; gamma: number[]; beta: number[] } | undefined,
): { weights: number[][]; prompts: number[][][] } {
  const T = attemptTemperature(config, d);
  const weights: number[][] = [];
  const prompts: number[][][] = [];
  embeds.forEach((E, b) => {
    const tgt = targets[b]!;
    const cands = config.includeTarget ? [...sources, tgt] : sources;
    let a: number[];
    if (config.attn === 'constant') a = cands.map(() => 1 / cands.length);
    else {
      const xHat = colMax(config.poolPadding ? E : E.filter((_, i) => mask[b]![i] === 1));
      let q = xHat;
      if (config.attn !== 'dot') {
        let h = matVec(xHat, mod!.down);
        if (config.attn === 'sub') h = h.map((v) => v / (1 + Math.exp(-v)));
        const u = matVec(h, mod!.up);
        const mean = u.reduce((s, v) => s + v, 0) / d;
        const variance = u.reduce((s, v) => s + (v - mean) ** 2, 0) / d;
        q = u.map(
          (v, i) => ((v - mean) / Math.sqrt(variance + LAYER_NORM_EPS)) * mod!.gamma[i]! + mod!.beta[i]!,
        );
      }
      const logits = cands.map((c) => dot(colMax(c), q) / T);
      const m = Math.max(...logits);
      const e = logits.map((l) => Math.exp(l - m));
      const z = e.reduce((s, v) => s + v, 0);
      a = e.map((v) => v / z);
    }
    weights.push(a);
    prompts.push(
      tgt.map((row, i) => row.map((v, j) => v + cands.reduce((s, c, k) => s + a[k]! * c[i]![j]!, 0))),
    );
  });
  return { weights, prompts };
}

function maxAbsDiff(a: number[] | number[][] | number[][][], b: typeof a): number {
  const fa = (a as unknown[]).flat(3) as number[];
  const fb = (b as unknown[]).flat(3) as number[];
  assert.equal(fa.length, fb.length);
  return Math.max(...fa.map((x, i) => Math.abs(x - fb[i]!)));
}

describe('ATTEMPT method', () => {
  let model: T5Model;
  let d: number;

  before(async () => {
    await selectBackend({ requested: testBackend() });
    const { config, tensors } = makeTinyT5(V11);
    model = T5Model.fromWeights(config, tensors);
    d = config.dModel;
  });
  after(() => model.dispose());

  test('forward shapes, prompt rows in front of the unchanged embeddings, for every variant', () => {
    for (const attn of ATTENTION_VARIANTS) {
      for (const includeTarget of [true, false]) {
        const m = create(model, { attn, includeTarget });
        const batch = makeBatch();
        tf.tidy(() => {
          const enc = m.encoderInputs(model, batch);
          assert.deepEqual(enc.inputsEmbeds.shape, [3, N + 6, d]);
          assert.deepEqual(enc.attentionMask.shape, [3, N + 6]);
          const maskRows = enc.attentionMask.arraySync();
          const batchMask = batch.attentionMask.arraySync();
          for (const [b, row] of maskRows.entries()) assert.deepEqual(row, [1, 1, 1, ...batchMask[b]!]);
          const tokens = tf.slice(enc.inputsEmbeds, [0, N, 0], [3, 6, d]);
          assert.equal(maxAbsDiff(tokens.arraySync(), model.embed(batch.inputIds).arraySync()), 0);
        });
        const w = m.attentionWeights(model, batch);
        assert.equal(w.length, 3);
        for (const row of w) {
          assert.equal(row.length, SOURCES.length + (includeTarget ? 1 : 0), `${attn} ${includeTarget}`);
          assert.ok(Math.abs(row.reduce((s, v) => s + v, 0) - 1) < 1e-5);
        }
        disposeBatch(batch);
        m.dispose();
      }
    }
  });

  test('matches a plain-JS reference of the spec (x_hat, keys, query, softmax / T, residual)', () => {
    const cases: Record<string, unknown>[] = [
      { attn: 'sub', temperature: 2 },
      { attn: 'sub', temperature: 2, poolPadding: true },
      { attn: 'linear', temperature: 2, includeTarget: false },
      { attn: 'dot', temperature: 5 },
      { attn: 'constant' },
      { attn: 'sub', temperature: 2, multiTask: true },
    ];
    const inputs = sourceInputs(d);
    const srcs = SOURCES.map((s) => {
      const data = inputs.get(s)!.data;
      return Array.from({ length: N }, (_, i) => Array.from(data.subarray(i * d, (i + 1) * d)));
    });
    for (const raw of cases) {
      const tasks = ['a', 'b'];
      const m = create(model, raw, tasks, inputs);
      randomise(m, 50);
      const batchTasks = ['b', 'a', 'b'];
      const batch = makeBatch(batchTasks);
      const get = (name: string) => m.params.find((p) => p.name === name)?.variable.arraySync();
      const targets = batchTasks.map((t) => get(m.config.multiTask ? `target.${t}` : 'target') as M);
      const mod =
        raw.attn === 'sub' || raw.attn === 'linear'
          ? {
              down: get('attention.down') as M,
              up: get('attention.up') as M,
              gamma: get('attention.ln.gamma') as number[],
              beta: get('attention.ln.beta') as number[],
            }
          : undefined;
      const embeds = tf.tidy(() => model.embed(batch.inputIds).arraySync());
      const ref = referenceForward(m.config, d, embeds, batch.attentionMask.arraySync(), srcs, targets, mod);
      const weights = m.attentionWeights(model, batch);
      const label = JSON.stringify(raw);
      assert.ok(maxAbsDiff(weights, ref.weights) < 1e-5, `${label}: weights ${weights} vs ${ref.weights}`);
      if (raw.attn !== 'constant') {
        const spread = Math.max(...ref.weights.flat()) - Math.min(...ref.weights.flat());
        assert.ok(
          spread > 0.05,
          `${label}: reference attention is nearly uniform (${spread}); test is too weak`,
        );
      }
      const prompts = tf.tidy(() =>
        tf.slice(m.encoderInputs(model, batch).inputsEmbeds, [0, 0, 0], [3, N, d]).arraySync(),
      );
      assert.ok(maxAbsDiff(prompts, ref.prompts) < 1e-4, `${label}: P_ins differs from the reference`);
      disposeBatch(batch);
      m.dispose();
    }
  });

  test('zero W_down / W_up give uniform attention (q = LN(0) = beta = 0)', () => {
    const m = create(model, { temperature: 1 });
    const batch = makeBatch();
    const before = m.attentionWeights(model, batch).flat();
    assert.ok(Math.max(...before) - Math.min(...before) > 0.05, 'attention should be non-uniform before');
    for (const name of ['attention.down', 'attention.up']) {
      const v = param(m, name).variable;
      tf.tidy(() => v.assign(tf.zerosLike(v)));
    }
    for (const w of m.attentionWeights(model, batch).flat()) assert.ok(Math.abs(w - 1 / 3) < 1e-6, `${w}`);
    disposeBatch(batch);
    m.dispose();
  });

  test('a huge temperature gives uniform attention; the constant variant is exactly uniform', () => {
    const batch = makeBatch();
    const sharp = create(model, { temperature: 1 });
    const w1 = sharp.attentionWeights(model, batch).flat();
    assert.ok(Math.max(...w1) - Math.min(...w1) > 0.05);
    sharp.dispose();
    const flat = create(model, { temperature: 1e9 });
    for (const w of flat.attentionWeights(model, batch).flat()) assert.ok(Math.abs(w - 1 / 3) < 1e-6, `${w}`);
    flat.dispose();
    for (const includeTarget of [true, false]) {
      const c = create(model, { attn: 'constant', includeTarget });
      const J = SOURCES.length + (includeTarget ? 1 : 0);
      for (const w of c.attentionWeights(model, batch).flat()) assert.equal(w, Math.fround(1 / J));
      assert.deepEqual(
        c.params.map((p) => p.name),
        ['target'],
      );
      c.dispose();
    }
    disposeBatch(batch);
  });

  test('default temperature is d * e (2087 for d = 768)', () => {
    const config = parseAttemptConfig({ sources: ['mnli'] });
    assert.equal(config.temperature, undefined);
    assert.equal(Math.floor(attemptTemperature(config, 768)), 2087);
    assert.equal(attemptTemperature(parseAttemptConfig({ sources: ['mnli'], temperature: 7 }), 768), 7);
    const m = create(model, {});
    assert.equal(m.temperature, d * Math.E);
    m.dispose();
  });

  test('poolPadding changes x_hat only for padded examples', () => {
    const masked = create(model, { poolPadding: false, temperature: 1 });
    const quirk = create(model, { poolPadding: true, temperature: 1 });
    const batch = makeBatch();
    const a = tf.tidy(() => masked.pooledInput(model, batch).arraySync());
    const b = tf.tidy(() => quirk.pooledInput(model, batch).arraySync());
    assert.equal(maxAbsDiff(a[0]!, b[0]!), 0, 'the unpadded example must pool the same');
    for (const i of [1, 2]) assert.ok(maxAbsDiff(a[i]!, b[i]!) > 1e-3, `padded example ${i} should differ`);
    // Masked pooling is the max over the real tokens only.
    const embeds = tf.tidy(() => model.embed(batch.inputIds).arraySync());
    const mask = batch.attentionMask.arraySync();
    embeds.forEach((E, i) => {
      assert.ok(maxAbsDiff(a[i]!, colMax(E.filter((_, j) => mask[i]![j] === 1))) < 1e-6);
      assert.ok(maxAbsDiff(b[i]!, colMax(E)) < 1e-6);
    });
    const wa = masked.attentionWeights(model, batch);
    const wb = quirk.attentionWeights(model, batch);
    assert.equal(maxAbsDiff(wa[0]!, wb[0]!), 0);
    assert.ok(maxAbsDiff(wa[2]!, wb[2]!) > 1e-4);
    disposeBatch(batch);
    masked.dispose();
    quirk.dispose();
  });

  test('multi-task: each example gets its own target prompt; an unknown task is named', () => {
    const tasks = ['a', 'b', 'c'];
    const m = create(model, { multiTask: true, targetInit: 'vocab', temperature: 2 }, tasks);
    const targets = Object.fromEntries(
      tasks.map((t) => [t, param(m, `target.${t}`).variable.arraySync() as number[][]]),
    );
    assert.ok(maxAbsDiff(targets.a!, targets.b!) > 0.1, 'vocab init should differ per task');
    const batchTasks = ['b', 'a', 'b'];
    const batch = makeBatch(batchTasks);
    // P_ins - sum_j a_j C_j is the example's own target (the residual), for the weights the method reports.
    const weights = m.attentionWeights(model, batch);
    const inputs = sourceInputs(d);
    const prompts = tf.tidy(() =>
      tf.slice(m.encoderInputs(model, batch).inputsEmbeds, [0, 0, 0], [3, N, d]).arraySync(),
    );
    batchTasks.forEach((task, b) => {
      const own = targets[task]!;
      const expected = own.map((row, i) =>
        row.map(
          (v, j) =>
            v * (1 + weights[b]![2]!) +
            SOURCES.reduce((s, name, k) => s + weights[b]![k]! * inputs.get(name)!.data[i * d + j]!, 0),
        ),
      );
      assert.ok(maxAbsDiff(prompts[b]!, expected) < 1e-4, `example ${b} did not use target.${task}`);
    });
    disposeBatch(batch);

    assert.throws(() => m.encoderInputs(model, makeBatch(['a', 'zzz', 'a'])), /task 'zzz'/);
    m.dispose();
  });

  test("initialisation is the released code's: W_down, W_up ~ N(0, 0.01^2); LayerNorm 1 / 0", () => {
    // r = 512 gives 8,192 draws per matrix at d = 16: the std's standard error is ~0.8%, far below the 14x gap to
    // torch's default uniform(+-1/sqrt(fan_in)) (std 0.144 for W_down at fan_in 16).
    const r = 512;
    const m = create(model, { attentionDim: r });
    try {
      for (const name of ['attention.down', 'attention.up']) {
        const x = param(m, name).variable.dataSync() as Float32Array;
        assert.equal(x.length, d * r, name);
        const mean = x.reduce((a, b) => a + b, 0) / x.length;
        const std = Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length);
        assert.ok(Math.abs(std - ATTENTION_INIT_STD) < 0.03 * ATTENTION_INIT_STD, `${name} std ${std}`);
        assert.ok(Math.abs(mean) < (4 * ATTENTION_INIT_STD) / Math.sqrt(x.length), `${name} mean ${mean}`);
        // Normal, not a uniform of the same std: 68.3% within one std (a uniform has 57.7%).
        const within = x.filter((v) => Math.abs(v) < ATTENTION_INIT_STD).length / x.length;
        assert.ok(Math.abs(within - 0.6827) < 0.02, `${name}: ${within} within one std`);
      }
      // The two matrices are independent draws, not one stream reused.
      assert.notDeepEqual(
        [...param(m, 'attention.down').variable.dataSync().slice(0, 8)],
        [...param(m, 'attention.up').variable.dataSync().slice(0, 8)],
      );
      // The module's Linears have no bias (bias=False); the LayerNorm's weight and bias are torch's 1 and 0.
      assert.deepEqual([...param(m, 'attention.ln.gamma').variable.dataSync()], new Array(d).fill(1));
      assert.deepEqual([...param(m, 'attention.ln.beta').variable.dataSync()], new Array(d).fill(0));
    } finally {
      m.dispose();
    }
  });

  test('groups: target prompts in "prompt", the attention module in "attention"; LN frozen on request', () => {
    const m = create(model, {});
    assert.deepEqual(
      m.params.map((p) => [p.name, p.group]),
      [
        ['target', 'prompt'],
        ['attention.down', 'attention'],
        ['attention.up', 'attention'],
        ['attention.ln.gamma', 'attention'],
        ['attention.ln.beta', 'attention'],
      ],
    );
    m.dispose();
    const frozenLn = create(model, { trainableLayerNorm: false });
    assert.deepEqual(
      frozenLn.params.map((p) => p.name),
      ['target', 'attention.down', 'attention.up'],
    );
    assert.deepEqual([...frozenLn.frozen.get('attention.ln.gamma')!.dataSync()], new Array(d).fill(1));
    assert.deepEqual([...frozenLn.frozen.get('attention.ln.beta')!.dataSync()], new Array(d).fill(0));
    // The target starts as a copy of the first source prompt (the paper's MNLI initialisation).
    assert.deepEqual(param(frozenLn, 'target').variable.dataSync(), sourceInputs(d).get('mnli')!.data);
    frozenLn.dispose();
  });

  test('parameter accounting reproduces the paper at t5-base size', () => {
    const six = ['mnli', 'sst2', 'qnli', 'qqp', 'squad', 'record'];
    const dims = (tasks: string[]) => ({ dModel: 768, vocabSize: 32128, tasks });
    const report = (raw: Record<string, unknown>, tasks: string[]) => {
      const config = parseAttemptConfig({ sources: six, ...raw });
      return parameterReport('attempt', attempt.describe(config, dims(tasks)), dims(tasks));
    };
    const single = report({}, ['rte']);
    assert.equal(single.total, 231_936);
    assert.equal(single.perTask, 231_936);
    assert.equal(single.frozen, 6 * 76_800);
    const noLn = report({ trainableLayerNorm: false }, ['rte']);
    assert.equal(noLn.total, 230_400);
    assert.equal(noLn.perTask, 230_400);
    assert.equal(noLn.frozen, 6 * 76_800 + 1_536);
    const eight = ['mnli', 'qqp', 'qnli', 'sst2', 'stsb', 'mrpc', 'rte', 'cola'];
    const multi = report({ multiTask: true }, eight);
    assert.equal(multi.perTask, 96_192);
    assert.equal(multi.total, 8 * 96_192);
    assert.equal(multi.tensors.filter((t) => t.task !== undefined).length, 8);
    // What `promptmesh describe` builds from its quick flags.
    const quick = (tasks: string[], trainableLayerNorm: boolean) => {
      const raw = attempt.quickConfig!({ tasks, trainableLayerNorm, tuneBank: false, sources: 6 });
      const config = attempt.parseConfig(raw);
      assert.deepEqual(config.sources, six);
      return parameterReport('attempt', attempt.describe(config, dims(tasks)), dims(tasks)).perTask;
    };
    assert.equal(quick(['rte'], true), 231_936);
    assert.equal(quick(['rte'], false), 230_400);
    assert.equal(quick(eight, true), 96_192);
    assert.equal(report({ attn: 'dot' }, ['rte']).total, 76_800);
    assert.equal(report({ attn: 'constant' }, ['rte']).total, 76_800);
  });

  test('config validation names the field', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ sources: ['mnli'], atn: 'sub' }, 'atn'],
      [{ sources: ['mnli'], attn: 'softmax' }, 'attn'],
      [{ sources: ['mnli'], temperature: 0 }, 'temperature'],
      [{ sources: ['mnli'], temperature: -3 }, 'temperature'],
      [{ sources: ['mnli'], temperature: 'hot' }, 'temperature'],
      [{}, 'sources'],
      [{ sources: 'mnli' }, 'sources'],
      [{ sources: ['mnli', 'mnli'] }, 'sources'],
      [{ sources: [''] }, 'sources'],
      [{ sources: ['mnli'], promptLength: 0 }, 'promptLength'],
      [{ sources: ['mnli'], attentionDim: 1.5 }, 'attentionDim'],
      [{ sources: ['mnli'], targetInit: 'zeros' }, 'targetInit'],
      [{ sources: ['mnli'], multiTask: 'yes' }, 'multiTask'],
      [{ sources: ['mnli'], poolPadding: 1 }, 'poolPadding'],
    ];
    for (const [raw, field] of cases) {
      assert.throws(
        () => parseAttemptConfig(raw),
        (err: unknown) =>
          err instanceof MethodConfigError &&
          err.field === field &&
          err.message.startsWith(`attempt.${field}:`),
        `${JSON.stringify(raw)} should fail on ${field}`,
      );
    }
    assert.deepEqual(parseAttemptConfig({ method: 'attempt', sources: ['mnli'] }), {
      promptLength: 100,
      attentionDim: 100,
      attn: 'sub',
      includeTarget: true,
      trainableLayerNorm: true,
      multiTask: false,
      poolPadding: false,
      sources: ['mnli'],
      targetInit: 'first-source',
    });
    // Source prompts are checked when the method is built.
    const missing = new Map(sourceInputs(d));
    missing.delete('sst2');
    assert.throws(
      () => create(model, {}, ['rte'], missing),
      (e: unknown) => e instanceof MethodConfigError && e.field === 'sources' && /'sst2'/.test(e.message),
    );
    const wrongLength = sourceInputs(d, SOURCES, N + 1);
    assert.throws(
      () => create(model, {}, ['rte'], wrongLength),
      (e: unknown) => e instanceof MethodConfigError && e.field === 'sources' && /\[4, 16\]/.test(e.message),
    );
  });

  test('loss goes down with Adam over the method params; tensor count stays flat', () => {
    const m = create(model, { temperature: 2 });
    const batch = makeBatch();
    const vars = m.params.map((p) => p.variable);
    const opt = tf.train.adam(0.1);
    const losses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const cost = opt.minimize(() => lossOf(m, model, batch), true, vars)!;
      losses.push(cost.dataSync()[0]!);
      cost.dispose();
    }
    opt.dispose();
    // A frozen random tiny T5 moves slowly (7.6 -> 5.5 at this lr): a 20% drop is far outside noise.
    assert.ok(losses.at(-1)! < 0.8 * losses[0]!, `loss ${losses[0]} -> ${losses.at(-1)}`);

    // Plain SGD steps must not leak: the forward runs inside the trainer's gradient scope every step.
    const sgd = () =>
      tf.tidy(() => {
        const { grads } = tf.variableGrads(() => lossOf(m, model, batch), vars);
        for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name]!, 0.1)));
      });
    sgd();
    const start = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) sgd();
    m.attentionWeights(model, batch);
    assert.equal(tf.memory().numTensors, start);
    disposeBatch(batch);
    m.dispose();
  });
});
