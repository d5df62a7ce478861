/** Shared pieces of the TPT and SPT tests: a tiny frozen T5, batches, a finite-difference check, a short run. */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import type { MethodParam, PromptBatch, PromptMethod } from '../../src/methods/index.js';
import { makeTinyT5 } from '../../src/model/checkpoint/index.js';
import { T5Model } from '../../src/model/t5/index.js';

/** v1.1 (gated-gelu) is smooth, so central differences are exact up to float32 noise. */
export function tinyModel(variant: 'v1' | 'v1.1' = 'v1.1'): T5Model {
  const { config, tensors } = makeTinyT5({ variant, seed: 3, vocabSize: 128 });
  return T5Model.fromWeights(config, tensors);
}

/** Rows: [ids (padded with 0), target ids, task]. Lengths differ so padding matters. */
export const ROWS: [number[], number[], string][] = [
  [[5, 6, 7, 8, 9, 1], [3, 4, 1], 'a'],
  [[20, 21, 1], [11, 1], 'b'],
  [[40, 41, 42, 43, 1], [12, 13, 1], 'a'],
  [[60, 61, 62, 1], [14, 1], 'b'],
];

export function makeBatch(rows: [number[], number[], string][] = ROWS): PromptBatch {
  const L = Math.max(...rows.map((r) => r[0].length));
  const T = Math.max(...rows.map((r) => r[1].length));
  const pad = (xs: number[], n: number) => [...xs, ...new Array<number>(n - xs.length).fill(0)];
  const ones = (xs: number[], n: number) =>
    pad(
      xs.map(() => 1),
      n,
    );
  return {
    inputIds: tf.tensor2d(
      rows.map((r) => pad(r[0], L)),
      [rows.length, L],
      'int32',
    ),
    attentionMask: tf.tensor2d(rows.map((r) => ones(r[0], L))),
    labels: tf.tensor2d(
      rows.map((r) => pad(r[1], T)),
      [rows.length, T],
      'int32',
    ),
    labelMask: tf.tensor2d(rows.map((r) => ones(r[1], T))),
    tasks: rows.map((r) => r[2]),
  };
}

export function disposeBatch(b: PromptBatch): void {
  tf.dispose([b.inputIds, b.attentionMask, b.labels, b.labelMask]);
}

export function methodLoss(method: PromptMethod, model: T5Model, batch: PromptBatch): tf.Scalar {
  return tf.tidy(() => {
    const inputs = method.encoderInputs(model, batch);
    return model.loss({ ...inputs, labels: batch.labels, labelMask: batch.labelMask });
  });
}

export function param(method: PromptMethod, name: string): MethodParam {
  const p = method.params.find((x) => x.name === name);
  if (!p) throw new Error(`no param ${name} (have ${method.params.map((x) => x.name).join(', ')})`);
  return p;
}

/** Gradients of the method's loss w.r.t. each of its params, as host arrays. */
export function paramGrads(
  method: PromptMethod,
  model: T5Model,
  batch: PromptBatch,
): Map<string, Float32Array> {
  const vars = method.params.map((p) => p.variable);
  const { value, grads } = tf.variableGrads(() => methodLoss(method, model, batch), vars);
  const out = new Map<string, Float32Array>();
  for (const p of method.params) out.set(p.name, grads[p.variable.name]!.dataSync() as Float32Array);
  value.dispose();
  tf.dispose(Object.values(grads));
  return out;
}

/**
 * Directional derivative of the loss along a random direction u of one variable: analytic (grad . u) vs central
 * differences. `probe` runs at x + eps u and x - eps u (to check e.g. that a hard selection did not change).
 */
export function directional(
  method: PromptMethod,
  model: T5Model,
  batch: PromptBatch,
  name: string,
  seed: number,
  eps: number,
  probe?: () => void,
): { analytic: number; numeric: number } {
  const v = param(method, name).variable;
  const g = paramGrads(method, model, batch).get(name)!;
  const u = tf.randomNormal(v.shape, 0, 1, 'float32', seed);
  const ud = u.dataSync();
  let analytic = 0;
  for (let i = 0; i < g.length; i++) analytic += g[i]! * ud[i]!;
  const x0 = v.clone();
  const at = (sign: number) => {
    v.assign(tf.tidy(() => tf.add(x0, tf.mul(u, sign * eps))));
    probe?.();
    const l = methodLoss(method, model, batch);
    const val = l.dataSync()[0]!;
    l.dispose();
    return val;
  };
  const plus = at(1);
  const minus = at(-1);
  v.assign(x0);
  tf.dispose([u, x0]);
  return { analytic, numeric: (plus - minus) / (2 * eps) };
}

/** Adam over the method's params on a fixed batch; returns the losses and the tensor count after each step. */
export function shortRun(
  method: PromptMethod,
  model: T5Model,
  batch: PromptBatch,
  steps: number,
  lr: number,
): { losses: number[]; tensors: number[] } {
  const opt = tf.train.adam(lr);
  const vars = method.params.map((p) => p.variable);
  const losses: number[] = [];
  const tensors: number[] = [];
  for (let i = 0; i < steps; i++) {
    const l = opt.minimize(() => methodLoss(method, model, batch), true, vars)!;
    losses.push(l.dataSync()[0]!);
    l.dispose();
    tensors.push(tf.memory().numTensors);
  }
  opt.dispose();
  return { losses, tensors };
}

/**
 * The "loss goes down, nothing leaks" check every method passes: `steps` Adam steps on a fixed batch. The tiny
 * random decoder starts near 11 nats and only the method's tensors move, so a drop of over a nat is learning;
 * Adam creates its moment variables in step 1, after which the tensor count must not move.
 */
export function assertLearnsWithoutLeak(
  method: PromptMethod,
  model: T5Model,
  batch: PromptBatch,
  steps = 30,
  lr = 0.1,
): void {
  const start = methodLoss(method, model, batch);
  const l0 = start.dataSync()[0]!;
  start.dispose();
  const before = tf.memory().numTensors;
  const { losses, tensors } = shortRun(method, model, batch, steps, lr);
  assert.ok(losses.at(-1)! < l0 - 1, `loss ${l0} -> ${losses.at(-1)}`);
  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
  assert.ok(mean(losses.slice(-5)) < mean(losses.slice(0, 5)), `losses ${losses}`);
  assert.ok(
    tensors.slice(1).every((n) => n === tensors[1]),
    `tensor counts ${tensors}`,
  );
  assert.ok(tensors[1]! - before <= 2 * method.params.length + 4, `${tensors[1]} vs ${before}`);
}

export function rows2d(t: tf.Tensor): number[][] {
  return t.arraySync() as number[][];
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
