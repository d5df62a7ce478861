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
