/**
 * The conformance battery every registered method passes (as PEFT's common tester runs one battery over every
 * method), for each of its variants below, on a tiny frozen T5:
 *   1. describe() is what create() builds: names, shapes, groups, tasks, trainable or frozen, and the counts.
 *   2. the tensors touchedParams() names for a batch are exactly those with a non-zero gradient; every other
 *      trainable tensor gets none (no gradient, or exactly zero), which the sparse all-reduce relies on;
 *   3. the gradient of every trainable tensor agrees with central finite differences;
 *   4. training steps (the trainer's gradientSums, an update, an inspection) leave tf.memory().numTensors
 *      unchanged, and dispose() frees everything the method made;
 *   5. a bank round trip (commit the method's tensors as a bank version, load it, create the method with
 *      `restore`) gives back the same tensors and the same encoder inputs, bit for bit.
 * Adding a method means adding its variants to CASES: a registered method without them fails the first test.
 * What is particular to one method (its forward against a reference, its config errors, its init) stays in its
 * own test file.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { DirectoryStore, PromptBank } from '../../src/bank/index.js';
import { mulberry32 } from '../../src/data/rng.js';
import {
  type MethodContext,
  methodFactory,
  methodNames,
  type PromptBatch,
  type PromptMethod,
  parameterReport,
} from '../../src/methods/index.js';
import type { T5Model } from '../../src/model/t5/index.js';
import { gradientSums } from '../../src/train/gradients.js';
import { methodTensors } from '../../src/train/run-job.js';
import { testBackend } from '../helpers/backend.js';
import { disposeBatch, makeBatch, methodLoss, ROWS, tinyModel } from './tpt-spt-helpers.js';

type Inputs = NonNullable<MethodContext['inputs']>;

interface ConformanceCase {
  /** The method's raw config (tiny sizes). */
  config: Record<string, unknown>;
  /** Stage inputs the variant reads (ATTEMPT's source prompts), for a model of width d. */
  inputs?: (d: number) => Inputs;
  /**
   * Tensors whose gradient is by design not the derivative of the forward (SPT's 'dense' straight-through
   * estimate): the finite-difference check skips them; the method's own test checks the estimator.
   */
  surrogateGradient?: string[];
}

const TASKS = ['a', 'b'];
/** The batch's padded length; the variants that pad every input to maxSourceLength get exactly this. */
const MAX_SOURCE_LENGTH = Math.max(...ROWS.map((r) => r[0].length));
/** Only task 'a': the per-task tensors of 'b' must get nothing from it. */
const ONLY_A = ROWS.filter((r) => r[2] === 'a');

/** Source prompts at the scale of the tiny model's embeddings, deterministic per name. */
function sources(names: string[], n: number): (d: number) => Inputs {
  return (d) =>
    new Map(
      names.map((name, i) => {
        const rng = mulberry32(1000 + i);
        return [
          name,
          { shape: [n, d], data: Float32Array.from({ length: n * d }, () => (rng() * 2 - 1) * 1.7) },
        ];
      }),
    );
}

const ATTEMPT = { promptLength: 3, attentionDim: 4, sources: ['src1', 'src2'], temperature: 2 };
const TPT = { bankSize: 8, topK: 2, taskPromptLength: 2, bankInit: 'uniform' };
const SPT = { memorySlots: 4, memoryLength: 2, topK: 2, promptLength: 2, tau: 0.5 };

const CASES: Record<string, ConformanceCase[]> = {
  'prompt-tuning': [
    { config: { promptLength: 3 } },
    { config: { promptLength: 3, perTask: true } },
    { config: { promptLength: 3, init: 'uniform', perTask: true } },
  ],
  attempt: [
    { config: ATTEMPT, inputs: sources(ATTEMPT.sources, 3) },
    { config: { ...ATTEMPT, multiTask: true }, inputs: sources(ATTEMPT.sources, 3) },
    { config: { ...ATTEMPT, attn: 'linear', includeTarget: false }, inputs: sources(ATTEMPT.sources, 3) },
    { config: { ...ATTEMPT, attn: 'dot', temperature: 5 }, inputs: sources(ATTEMPT.sources, 3) },
    { config: { ...ATTEMPT, attn: 'constant' }, inputs: sources(ATTEMPT.sources, 3) },
    {
      config: { ...ATTEMPT, trainableLayerNorm: false, targetInit: 'vocab' },
      inputs: sources(ATTEMPT.sources, 3),
    },
    { config: { ...ATTEMPT, poolPadding: true, multiTask: true }, inputs: sources(ATTEMPT.sources, 3) },
  ],
  tpt: [
    { config: { ...TPT, stage: 'bank', bankInit: 'vocab' } },
    { config: TPT },
    { config: { ...TPT, tuneBank: true } },
    { config: { ...TPT, selector: 'softTopK' } },
    { config: { ...TPT, stage: 'bank', selector: 'softTopK' } },
    { config: { ...TPT, selector: 'avgPooling', promptInit: 'vocab' } },
    { config: { ...TPT, maskPadding: false, tuneBank: true } },
  ],
  spt: [
    { config: SPT, surrogateGradient: ['memory', 'keys'] },
    { config: { ...SPT, sharedPrompt: false, keyInit: 'uniform' }, surrogateGradient: ['memory', 'keys'] },
    { config: { ...SPT, retrievalGradient: 'topk' } },
    { config: { ...SPT, retrievalGradient: 'topk', sharedPrompt: false } },
    { config: { ...SPT, freezeMemory: true, sharedPrompt: false } },
  ],
};

function create(model: T5Model, name: string, c: ConformanceCase, extra: Partial<MethodContext> = {}) {
  const factory = methodFactory(name);
  return factory.create(factory.parseConfig(c.config), {
    model,
    tasks: TASKS,
    seed: 5,
    maxSourceLength: MAX_SOURCE_LENGTH,
    ...(c.inputs ? { inputs: c.inputs(model.config.dModel) } : {}),
    ...extra,
  });
}

/**
 * Moves every trainable tensor by U(-0.25, 0.25), deterministically: the checks then run away from the
 * initialisation (ATTEMPT's N(0, 0.01) projections, LayerNorm at 1 / 0), and a restore that fell back to the
 * initialiser could not pass for the saved state.
 */
function perturb(method: PromptMethod, seed: number): void {
  method.params.forEach((p, i) => {
    const rng = mulberry32(seed + i);
    const noise = Float32Array.from({ length: p.variable.size }, () => (rng() - 0.5) / 2);
    tf.tidy(() => p.variable.assign(tf.add(p.variable, tf.tensor(noise, p.variable.shape))));
  });
}

/** Gradient of the loss w.r.t. every trainable tensor; undefined where the tape found no path. */
function allGrads(
  method: PromptMethod,
  model: T5Model,
  batch: PromptBatch,
): Map<string, Float32Array | undefined> {
  const { value, grads } = tf.variableGrads(
    () => methodLoss(method, model, batch),
    method.params.map((p) => p.variable),
  );
  const out = new Map<string, Float32Array | undefined>();
  for (const p of method.params)
    out.set(p.name, grads[p.variable.name]?.dataSync() as Float32Array | undefined);
  value.dispose();
  tf.dispose(Object.values(grads));
  return out;
}

const retrieved = (m: PromptMethod, model: T5Model, batch: PromptBatch) =>
  JSON.stringify(m.inspect?.(model, batch).retrieved ?? null);

function bits(t: tf.Tensor): Buffer {
  const d = t.dataSync() as Float32Array;
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

describe('method conformance', () => {
  let model: T5Model;
  let batch: PromptBatch;
  let onlyA: PromptBatch;
  let bankRoot: string;

  before(async () => {
    await selectBackend({ requested: testBackend() });
    model = tinyModel('v1.1');
    batch = makeBatch();
    onlyA = makeBatch(ONLY_A);
    bankRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'promptmesh-conformance-'));
  });
  after(() => {
    disposeBatch(batch);
    disposeBatch(onlyA);
    model.dispose();
    fs.rmSync(bankRoot, { recursive: true, force: true });
  });

  test('every registered method has conformance cases, and every case names a registered method', () => {
    assert.deepEqual(Object.keys(CASES).sort(), methodNames());
  });

  for (const [name, cases] of Object.entries(CASES)) {
    for (const c of cases) {
      const label = `${name} ${JSON.stringify(c.config)}`;

      describe(label, () => {
        test('describe() is what create() builds, and the accounting counts it', () => {
          const factory = methodFactory(name);
          const config = factory.parseConfig(c.config);
          const dims = { dModel: model.config.dModel, vocabSize: model.config.vocabSize, tasks: TASKS };
          const specs = factory.describe(config, dims);
          const m = create(model, name, c);
          try {
            assert.deepEqual(
              m.params.map((p) => [p.name, p.variable.shape, p.group, p.task]),
              specs.filter((s) => s.trainable).map((s) => [s.name, s.shape, s.group, s.task]),
            );
            assert.deepEqual(
              [...m.frozen].map(([k, t]) => [k, t.shape]),
              specs.filter((s) => !s.trainable).map((s) => [s.name, s.shape]),
            );
            assert.ok(
              m.params.every((p) => p.variable.trainable),
              'every param is a trainable variable',
            );
            const report = parameterReport(name, specs, dims);
            assert.equal(
              report.total,
              m.params.reduce((a, p) => a + p.variable.size, 0),
            );
            assert.equal(
              report.frozen,
              [...m.frozen.values()].reduce((a, t) => a + t.size, 0),
            );
          } finally {
            m.dispose();
          }
        });

        test('touchedParams() names exactly the tensors with a non-zero gradient', () => {
          const m = create(model, name, c);
          try {
            perturb(m, 40);
            for (const b of [batch, onlyA]) {
              const touched = m.touchedParams(b.tasks);
              const grads = allGrads(m, model, b);
              for (const p of m.params) {
                const g = grads.get(p.name);
                const nonZero = g?.some((x) => x !== 0);
                assert.equal(
                  nonZero,
                  touched.includes(p.name),
                  `${p.name} with tasks ${[...new Set(b.tasks)]}: touched ${touched.includes(p.name)}, ` +
                    `non-zero gradient ${nonZero}`,
                );
                if (g) assert.ok(g.every(Number.isFinite), `${p.name}: non-finite gradient`);
              }
              assert.ok(touched.length > 0, 'a batch touches something');
            }
          } finally {
            m.dispose();
          }
        });

        test('gradients agree with central finite differences', () => {
          const m = create(model, name, c);
          const eps = 1e-3;
          try {
            perturb(m, 50);
            const grads = allGrads(m, model, batch);
            const selection = retrieved(m, model, batch);
            let checked = 0;
            for (const [k, p] of m.params.entries()) {
              if (c.surrogateGradient?.includes(p.name)) continue;
              const g = grads.get(p.name)!;
              const v = p.variable;
              // Two directions: the gradient's own (unit length), where the derivative is |g| and cannot vanish
              // unnoticed, and a random one, which catches a gradient right in size but wrong in direction.
              const norm = Math.sqrt(g.reduce((a, x) => a + x * x, 0));
              assert.ok(norm > 1e-3, `${p.name}: gradient too small to check (|g| = ${norm})`);
              const rng = mulberry32(90 + k);
              const directions = [g.map((x) => x / norm), Float32Array.from(g, () => rng() * 2 - 1)];
              for (const [j, u] of directions.entries()) {
                const analytic = g.reduce((a, x, i) => a + x * u[i]!, 0);
                const x0 = v.clone();
                const at = (sign: number): number => {
                  tf.tidy(() => v.assign(tf.add(x0, tf.mul(tf.tensor(u, v.shape), sign * eps))));
                  // A hard selection (top-k rows or slots) must not flip inside +-eps, or the comparison is moot.
                  assert.equal(
                    retrieved(m, model, batch),
                    selection,
                    `${p.name}: selection changed at ${sign}eps`,
                  );
                  const l = methodLoss(m, model, batch);
                  const value = l.dataSync()[0]!;
                  l.dispose();
                  return value;
                };
                const numeric = (at(1) - at(-1)) / (2 * eps);
                v.assign(x0);
                x0.dispose();
                const tol = 2e-2 * Math.abs(analytic) + 2e-3;
                assert.ok(
                  Math.abs(analytic - numeric) < tol,
                  `${p.name}, ${j === 0 ? 'along the gradient' : 'random direction'}: analytic ${analytic} vs numeric ${numeric}`,
                );
              }
              checked++;
            }
            assert.ok(checked > 0, 'at least one tensor checked');
          } finally {
            m.dispose();
          }
        });

        test('training steps leak no tensor; dispose() frees everything the method made', () => {
          const start = tf.memory().numTensors;
          const m = create(model, name, c);
          const step = () => {
            const { grads } = gradientSums(model, m, batch);
            assert.deepEqual([...grads.keys()], m.touchedParams(batch.tasks));
            for (const p of m.params) {
              const g = grads.get(p.name);
              if (g)
                tf.tidy(() =>
                  p.variable.assign(tf.sub(p.variable, tf.mul(tf.tensor(g, p.variable.shape), 0.1))),
                );
            }
            m.inspect?.(model, batch);
          };
          try {
            step();
            const after1 = tf.memory().numTensors;
            for (let i = 0; i < 3; i++) {
              step();
              assert.equal(tf.memory().numTensors, after1, `step ${i + 2}`);
            }
          } finally {
            m.dispose();
          }
          assert.equal(tf.memory().numTensors, start);
        });

        test('a bank round trip restores the state bit for bit', async () => {
          const m = create(model, name, c);
          let restored: PromptMethod | undefined;
          const store = new DirectoryStore(path.join(bankRoot, `${name}-${cases.indexOf(c)}`));
          const bank = new PromptBank(store, { onWarning: () => {} });
          try {
            perturb(m, 60);
            const params = new Map(m.params.map((p) => [p.name, p.variable.dataSync() as Float32Array]));
            const version = await bank.commit({
              job: 'conformance',
              parent: null,
              step: 1,
              method: name,
              config: c.config,
              tensors: methodTensors(m, params),
            });
            // Another seed and no stage inputs: everything must come from the version.
            const { inputs: _, ...withoutInputs } = c;
            restored = create(model, name, withoutInputs, { seed: 99, restore: await bank.load(version.id) });
            assert.deepEqual(
              restored.params.map((p) => p.name),
              m.params.map((p) => p.name),
            );
            for (const p of m.params) {
              const q = restored.params.find((x) => x.name === p.name)!;
              assert.ok(bits(q.variable).equals(bits(p.variable)), `param ${p.name}`);
            }
            assert.deepEqual([...restored.frozen.keys()], [...m.frozen.keys()]);
            for (const [k, t] of m.frozen)
              assert.ok(bits(restored.frozen.get(k)!).equals(bits(t)), `frozen ${k}`);
            const a = m.encoderInputs(model, batch);
            const b = restored.encoderInputs(model, batch);
            assert.ok(bits(b.inputsEmbeds).equals(bits(a.inputsEmbeds)), 'encoder inputs');
            assert.ok(bits(b.attentionMask).equals(bits(a.attentionMask)), 'encoder mask');
            tf.dispose([a.inputsEmbeds, a.attentionMask, b.inputsEmbeds, b.attentionMask]);
          } finally {
            m.dispose();
            restored?.dispose();
          }
        });
      });
    }
  }
});
