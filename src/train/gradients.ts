import * as tf from '@tensorflow/tfjs-core';
import type { PromptBatch, PromptMethod } from '../methods/index.js';
import type { DropoutPlan, T5Model } from '../model/t5/index.js';

export interface TaskLoss {
  /** Summed token negative log-likelihood. */
  nllSum: number;
  tokens: number;
  examples: number;
}

/** Gradients of the SUMMED token loss of one (micro-)batch: shards add up exactly to the global batch's. */
export interface GradientSums {
  /** Parameter name -> d(nllSum)/d(param), only for the params this batch touches. */
  grads: Map<string, Float32Array>;
  nllSum: number;
  tokens: number;
  perTask: Map<string, TaskLoss>;
}

/**
 * Forward and backward for one batch through the frozen model. Only the method's touched parameters are
 * differentiated; the backbone's weights are constants. `dropout` (one key per example of the batch) runs the
 * backbone in training mode; without it the pass is the evaluation-mode one.
 *
 * Everything the host needs (every gradient, the loss, the per-example losses and label counts) is concatenated on
 * the device and read back once: on native TensorFlow, and on a GPU above all, each read-back is a synchronisation
 * and a copy, and there used to be one per trained tensor. The per-parameter arrays are views into that buffer.
 */
export function gradientSums(
  model: T5Model,
  method: PromptMethod,
  batch: PromptBatch,
  dropout?: DropoutPlan,
): GradientSums {
  const touched = new Set(method.touchedParams(batch.tasks));
  const params = method.params.filter((p) => touched.has(p.name));
  let perExample: tf.Tensor | undefined;
  const { value, grads } = tf.variableGrads(
    () => {
      const enc = method.encoderInputs(model, batch);
      const terms = model.lossTerms({
        ...enc,
        labels: batch.labels,
        labelMask: batch.labelMask,
        ...(dropout ? { dropout } : {}),
      });
      perExample = tf.keep(terms.perExample);
      return terms.nllSum;
    },
    params.map((p) => p.variable),
  );
  const B = batch.tasks.length;
  const flat = tf.tidy(() => {
    const parts: tf.Tensor[] = params.map((p) => {
      const g = grads[p.variable.name];
      return g ? tf.reshape(g, [-1]) : tf.zeros([p.variable.size]);
    });
    parts.push(tf.reshape(value, [1]), tf.reshape(perExample!, [B]), tf.sum(batch.labelMask, 1));
    return tf.concat(parts.map((t) => tf.cast(t, 'float32')));
  });
  const host = flat.dataSync() as Float32Array;
  tf.dispose([flat, value, perExample!, ...Object.values(grads)]);
  const out = new Map<string, Float32Array>();
  let off = 0;
  for (const p of params) {
    out.set(p.name, host.subarray(off, off + p.variable.size));
    off += p.variable.size;
  }
  const nllSum = host[off]!;
  const per = host.subarray(off + 1, off + 1 + B);
  const labelCounts = host.subarray(off + 1 + B, off + 1 + 2 * B);
  const perTask = new Map<string, TaskLoss>();
  let tokens = 0;
  batch.tasks.forEach((t, i) => {
    const e = perTask.get(t) ?? { nllSum: 0, tokens: 0, examples: 0 };
    e.nllSum += per[i]!;
    e.tokens += labelCounts[i]!;
    e.examples += 1;
    tokens += labelCounts[i]!;
    perTask.set(t, e);
  });
  return { grads: out, nllSum, tokens, perTask };
}

/** Adds b into a (in place), for accumulating micro-batches. */
export function addGradientSums(a: GradientSums, b: GradientSums): GradientSums {
  for (const [k, g] of b.grads) {
    const cur = a.grads.get(k);
    if (!cur) a.grads.set(k, g);
    else for (let i = 0; i < g.length; i++) cur[i] = cur[i]! + g[i]!;
  }
  a.nllSum += b.nllSum;
  a.tokens += b.tokens;
  for (const [t, l] of b.perTask) {
    const e = a.perTask.get(t) ?? { nllSum: 0, tokens: 0, examples: 0 };
    e.nllSum += l.nllSum;
    e.tokens += l.tokens;
    e.examples += l.examples;
    a.perTask.set(t, e);
  }
  return a;
}

/**
 * The sums of one unit over exactly `names` (the plan's touched parameters, in order): zeros for a parameter the
 * unit does not touch, and every -0 made +0 (x + 0), so that adding a zero from elsewhere (an absent tensor, an
 * all-reduce slot another rank leaves empty) never changes a bit. The loss sum is a float32 value already.
 */
export function denseSums(
  s: GradientSums,
  names: readonly string[],
  size: (name: string) => number,
): GradientSums {
  const grads = new Map<string, Float32Array>();
  for (const name of names) {
    const g = s.grads.get(name);
    const out = new Float32Array(size(name));
    if (g) {
      if (g.length !== out.length)
        throw new RangeError(`gradient of '${name}' has ${g.length} elements, expected ${out.length}`);
      for (let i = 0; i < g.length; i++) out[i] = g[i]! + 0;
    }
    grads.set(name, out);
  }
  return { grads, nllSum: Math.fround(s.nllSum), tokens: s.tokens, perTask: s.perTask };
}

/**
 * a + b as a new GradientSums, element by element in float32 (the loss sum too; token counts are exact
 * integers): one node of the unit tree (unit-tree.ts). Both must hold the same parameters (denseSums).
 */
export function sumOf(a: GradientSums, b: GradientSums): GradientSums {
  const grads = new Map<string, Float32Array>();
  for (const [name, x] of a.grads) {
    const y = b.grads.get(name);
    if (!y || y.length !== x.length) throw new RangeError(`sumOf: '${name}' differs between the operands`);
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i]! + y[i]!;
    grads.set(name, out);
  }
  if (b.grads.size !== a.grads.size) throw new RangeError('sumOf: the operands hold different parameters');
  const perTask = new Map<string, TaskLoss>();
  for (const src of [a.perTask, b.perTask]) {
    for (const [t, l] of src) {
      const e = perTask.get(t) ?? { nllSum: 0, tokens: 0, examples: 0 };
      e.nllSum += l.nllSum;
      e.tokens += l.tokens;
      e.examples += l.examples;
      perTask.set(t, e);
    }
  }
  return { grads, nllSum: Math.fround(a.nllSum + b.nllSum), tokens: a.tokens + b.tokens, perTask };
}
