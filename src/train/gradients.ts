import * as tf from '@tensorflow/tfjs-core';
import type { PromptBatch, PromptMethod } from '../methods/index.js';
import type { T5Model } from '../model/t5/index.js';

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
 * differentiated; the backbone's weights are constants.
 */
export function gradientSums(model: T5Model, method: PromptMethod, batch: PromptBatch): GradientSums {
  const touched = new Set(method.touchedParams(batch.tasks));
  const params = method.params.filter((p) => touched.has(p.name));
  let perExample: tf.Tensor | undefined;
  const { value, grads } = tf.variableGrads(
    () => {
      const enc = method.encoderInputs(model, batch);
      const terms = model.lossTerms({ ...enc, labels: batch.labels, labelMask: batch.labelMask });
      perExample = tf.keep(terms.perExample);
      return terms.nllSum;
    },
    params.map((p) => p.variable),
  );
  const out = new Map<string, Float32Array>();
  for (const p of params) {
    const g = grads[p.variable.name];
    out.set(p.name, g ? (g.dataSync() as Float32Array).slice() : new Float32Array(p.variable.size));
  }
  const nllSum = value.dataSync()[0]!;
  const per = perExample!.dataSync();
  tf.dispose([value, perExample!, ...Object.values(grads)]);
  const labelCounts = tf.tidy(() => tf.sum(batch.labelMask, 1).dataSync());
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
