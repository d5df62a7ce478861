import * as tf from '@tensorflow/tfjs-core';
import type { T5Model } from '../../model/t5/index.js';
import { gatherRows } from '../gather-rows.js';
import type {
  EncoderInputs,
  MethodContext,
  MethodDims,
  MethodFactory,
  MethodInspection,
  ParamSpec,
  PromptBatch,
} from '../method.js';
import { MethodBase, readStageInput } from '../method-base.js';
import {
  prependPrompt,
  taskIndices,
  tidyInputs,
  tokenEmbeddings,
  uniformInit,
  vocabInit,
} from '../prompt-ops.js';
import { parseSptConfig, type SptConfig } from './config.js';

/** Added under the square root of a squared norm: a zero key or an empty query gets cosine 0, not NaN. */
const NORM_EPS = 1e-12;

/** Identity forward, zero gradient: the straight-through estimator's detach. */
const stopGradient = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = args[0] as tf.Tensor;
  return { value: tf.clone(x), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
});

function describe(config: SptConfig, dims: MethodDims): ParamSpec[] {
  const d = dims.dModel;
  const trainable = !config.freezeMemory;
  const memory: ParamSpec[] = [
    { name: 'memory', shape: [config.memorySlots, config.memoryLength, d], group: 'memory', trainable },
    { name: 'keys', shape: [config.memorySlots, d], group: 'memory', trainable },
  ];
  const shape = [config.promptLength, d];
  const prompts: ParamSpec[] = config.sharedPrompt
    ? [{ name: 'prompt', shape, group: 'prompt', trainable: true }]
    : dims.tasks.map((task) => ({ name: `prompt.${task}`, shape, group: 'prompt', trainable: true, task }));
  return [...memory, ...prompts];
}

/** Which memory slots each example retrieved and with what weight. */
export interface SptSelection {
  /** [B * k] slot ids, in descending score order within each example. */
  indices: Int32Array;
  /** [B * k] softmax weights w, matching `indices`. */
  weights: Float32Array;
  k: number;
}

/**
 * SPT, semi-parametric prompt tuning (Bari et al. 2022). No code was released: this design is OURS, built from
 * what the paper fixes (a memory bank of prompts, retrieved by the example's discrete prompt, combined with a
 * parametric prompt, trained multi-task over prompted tasks, evaluated zero-shot on held-out tasks).
 * ```
 * M [m, l, d]   memory prompts, K [m, d] their keys                     trainable, shared (group 'memory')
 * P [n, d]      parametric prompt, shared or one per task                trainable (group 'prompt')
 * z     = mean over the example's real tokens (mask 1) of the frozen embedding E(inputIds), z / |z|   [B, d]
 * s_i   = cos(z, K_i) / tau ;  top-k slots by s ;  w = softmax over the k retrieved s
 * P_mem = sum_{i in top-k} w_i M_i                                       [B, l, d]
 * encoder input = [P_mem ; P ; E]
 * ```
 * The query is the example's own discrete prompt: its source text, which is the task's template applied to the
 * example (task prefix and field names around the example's fields), exactly what the encoder reads. So two
 * examples of one task may retrieve different slots, and a task the method was not created with retrieves memory
 * like any other (zero-shot on held-out tasks, with a shared P); no per-task lookup exists.
 *
 * Determinism: z is pooled on the host in float64 over the example's own real tokens, and the top-k choice is
 * made on the host (float64 cosines, ties to the lower slot), so an example retrieves the same slots alone, in
 * any batch, and with any padding. Only w and the mixture run on the backend, per example.
 *
 * Learning of unpicked slots (`retrievalGradient`): with 'topk', the gradient is exact for the forward, so
 * slots and keys no example retrieves get exactly zero. With 'dense' (default), the forward is unchanged
 * (bit for bit: sg(P_mem) + (P_dense - sg(P_dense)) with P_dense = sum_i softmax_i(s) M_i over all m slots)
 * and the backward is that of P_dense: every slot and key learns, weighted by its softmax score.
 */
export class Spt extends MethodBase {
  readonly name = 'spt';
  private readonly d: number;

  constructor(
    readonly config: SptConfig,
    tasks: readonly string[],
    ctx: MethodContext,
  ) {
    super(tasks);
    this.d = ctx.model.config.dModel;
    try {
      const specs = describe(config, { dModel: this.d, vocabSize: ctx.model.config.vocabSize, tasks });
      this.materialize(specs, (spec) => this.initialValue(spec, ctx), ctx.restore);
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  encoderInputs(model: T5Model, batch: PromptBatch): EncoderInputs {
    const zHost = this.queries(model, batch);
    const indices = this.select(zHost);
    return tidyInputs(() => {
      const embeds = tokenEmbeddings(model, batch);
      const B = embeds.shape[0];
      const { memorySlots: m, memoryLength: l, topK: k } = this.config;
      const z = tf.tensor2d(zHost, [B, this.d]);
      const idx = tf.tensor2d(indices, [B, k], 'int32');
      const w = this.weights(z, idx); // [B, k]
      const memory = tf.reshape(this.tensor('memory'), [m, l * this.d]) as tf.Tensor2D;
      const slots = gatherRows(memory, idx); // [B, k, l*d]
      let mixed = tf.sum(tf.mul(slots, tf.expandDims(w, 2)), 1) as tf.Tensor2D; // [B, l*d]
      if (this.config.retrievalGradient === 'dense' && !this.config.freezeMemory) {
        const dense = tf.matMul(this.denseWeights(z), memory); // [B, l*d]
        mixed = tf.add(stopGradient(mixed), tf.sub(dense, stopGradient(dense)));
      }
      const memPrompt = tf.reshape(mixed, [B, l, this.d]);
      const prompt = tf.concat([memPrompt, this.parametric(batch.tasks, B)], 1) as tf.Tensor3D;
      return prependPrompt(prompt, embeds, batch.attentionMask);
    });
  }

  /** The slots and weights each example of the batch retrieves (for inspection and tests). */
  retrieve(model: T5Model, batch: PromptBatch): SptSelection {
    const zHost = this.queries(model, batch);
    const indices = this.select(zHost);
    const B = batch.tasks.length;
    const k = this.config.topK;
    const weights = tf.tidy(() =>
      this.weights(tf.tensor2d(zHost, [B, this.d]), tf.tensor2d(indices, [B, k], 'int32')).dataSync(),
    ) as Float32Array;
    return { indices, weights: Float32Array.from(weights), k };
  }

  inspect(model: T5Model, batch: PromptBatch): MethodInspection {
    const { indices, k } = this.retrieve(model, batch);
    return {
      retrieved: Array.from({ length: indices.length / k }, (_, b) => [
        ...indices.subarray(b * k, (b + 1) * k),
      ]),
    };
  }

  /**
   * z of each example, [B * d] unit-norm: the float64 mean of the frozen embedding rows of its real tokens, in
   * position order, so neither padding nor the rest of the batch can change it. An example without real tokens
   * gets z = 0 (every cosine 0).
   */
  private queries(model: T5Model, batch: PromptBatch): Float32Array {
    const [B, L] = batch.inputIds.shape;
    const d = this.d;
    const ids = batch.inputIds.dataSync();
    const mask = batch.attentionMask.dataSync();
    const rowOf = new Map<number, number>();
    for (let i = 0; i < B * L; i++) if (mask[i]! > 0 && !rowOf.has(ids[i]!)) rowOf.set(ids[i]!, rowOf.size);
    const V = model.config.vocabSize;
    for (const id of rowOf.keys()) {
      if (!Number.isInteger(id) || id < 0 || id >= V)
        throw new Error(`spt: input id ${id} is outside the vocabulary [0, ${V})`);
    }
    const rows =
      rowOf.size === 0
        ? new Float32Array(0)
        : (tf.tidy(() =>
            tf.gather(model.shared, tf.tensor1d(Int32Array.from(rowOf.keys()), 'int32')).dataSync(),
          ) as Float32Array);
    const z = new Float32Array(B * d);
    const acc = new Float64Array(d);
    for (let b = 0; b < B; b++) {
      acc.fill(0);
      let n = 0;
      for (let t = 0; t < L; t++) {
        if (!(mask[b * L + t]! > 0)) continue;
        const r = rowOf.get(ids[b * L + t]!)! * d;
        for (let j = 0; j < d; j++) acc[j]! += rows[r + j]!;
        n++;
      }
      let sq = 0;
      for (let j = 0; j < d; j++) sq += (acc[j]! / Math.max(1, n)) ** 2;
      const norm = Math.sqrt(sq + NORM_EPS);
      for (let j = 0; j < d; j++) z[b * d + j] = acc[j]! / Math.max(1, n) / norm;
    }
    return z;
  }

  /** Top-k slots of each example by cosine, on the host (float64; ties to the lower slot): [B * k]. */
  private select(z: Float32Array): Int32Array {
    const { memorySlots: m, topK: k } = this.config;
    const d = this.d;
    const keys = this.tensor('keys').dataSync() as Float32Array;
    const B = z.length / d;
    const scores = new Float64Array(m);
    const order = Array.from({ length: m }, (_, i) => i);
    const out = new Int32Array(B * k);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < m; i++) {
        let dot = 0;
        let sq = 0;
        for (let j = 0; j < d; j++) {
          const key = keys[i * d + j]!;
          dot += key * z[b * d + j]!;
          sq += key * key;
        }
        scores[i] = dot / Math.sqrt(sq + NORM_EPS);
      }
      order.sort((x, y) => scores[y]! - scores[x]! || x - y);
      for (let r = 0; r < k; r++) out[b * k + r] = order[r]!;
    }
    return out;
  }

  /** w = softmax over the retrieved slots of cos(z, K_i) / tau, differentiable in the keys: [B, k]. */
  private weights(z: tf.Tensor2D, idx: tf.Tensor2D): tf.Tensor2D {
    const keys = gatherRows(this.tensor('keys') as tf.Tensor2D, idx) as tf.Tensor3D; // [B, k, d]
    const unit = tf.div(keys, tf.sqrt(tf.add(tf.sum(tf.square(keys), 2, true), NORM_EPS)));
    const cos = tf.sum(tf.mul(unit, tf.expandDims(z, 1)), 2);
    return tf.softmax(tf.div(cos, this.config.tau)) as tf.Tensor2D;
  }

  /** softmax over all m slots of cos(z, K_i) / tau: [B, m] (the straight-through backward of 'dense'). */
  private denseWeights(z: tf.Tensor2D): tf.Tensor2D {
    const keys = this.tensor('keys') as tf.Tensor2D;
    const unit = tf.div(keys, tf.sqrt(tf.add(tf.sum(tf.square(keys), 1, true), NORM_EPS)));
    return tf.softmax(tf.div(tf.matMul(z, unit, false, true), this.config.tau)) as tf.Tensor2D;
  }

  private parametric(batchTasks: readonly string[], B: number): tf.Tensor3D {
    const n = this.config.promptLength;
    if (this.config.sharedPrompt)
      return tf.tile(tf.expandDims(this.tensor('prompt'), 0), [B, 1, 1]) as tf.Tensor3D;
    const prompts = this.params.filter((p) => p.group === 'prompt').map((p) => p.variable);
    const stacked = tf.reshape(tf.stack(prompts), [prompts.length, n * this.d]) as tf.Tensor2D;
    const picked = gatherRows(stacked, tf.tensor1d(taskIndices(this.tasks, batchTasks, this.name), 'int32'));
    return tf.reshape(picked, [B, n, this.d]) as tf.Tensor3D;
  }

  private initialValue(spec: ParamSpec, ctx: MethodContext): Float32Array {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const field = spec.name === 'memory' ? 'memoryFrom' : spec.name === 'keys' ? 'keysFrom' : 'promptFrom';
    const from = this.config[field];
    if (from !== undefined) {
      return readStageInput(this.name, ctx.inputs, field, from, {
        shape: spec.shape,
        target: `'${spec.name}'`,
      });
    }
    const init =
      spec.name === 'memory'
        ? this.config.memoryInit
        : spec.name === 'keys'
          ? this.config.keyInit
          : this.config.promptInit;
    if (init === 'uniform') return uniformInit(size, 0.5, ctx.seed, spec.name);
    return vocabInit(ctx.model, size / this.d, ctx.seed, spec.name);
  }
}

export const spt: MethodFactory<SptConfig> = {
  name: 'spt',
  summary:
    "Bari et al. 2022 (our design; no public code): memory prompts retrieved by each example's discrete " +
    'prompt (its mean frozen input embedding), mixed by softmax weights, before a parametric prompt',
  parseConfig: parseSptConfig,
  describe,
  create: (config, ctx) => new Spt(config, ctx.tasks, ctx),
  servesUnseenTasks: (config) => config.sharedPrompt,
  quickConfig: (flags) => (flags.promptLength !== undefined ? { promptLength: flags.promptLength } : {}),
};
