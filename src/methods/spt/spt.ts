import * as tf from '@tensorflow/tfjs-core';
import type { T5Model } from '../../model/t5/index.js';
import { gatherRows } from '../gather-rows.js';
import type {
  EncoderInputs,
  MethodContext,
  MethodDims,
  MethodFactory,
  MethodParam,
  ParamSpec,
  PromptBatch,
  PromptMethod,
} from '../method.js';
import { MethodConfigError } from '../method.js';
import {
  materializeParams,
  prependPrompt,
  taskIndices,
  tidyInputs,
  tokenEmbeddings,
  uniformInit,
  vocabInit,
} from '../prompt-ops.js';
import { parseSptConfig, type SptConfig } from './config.js';

/** Added under the square root of a key's squared norm: a zero key gets cosine 0, not NaN. */
const NORM_EPS = 1e-12;

/** A task has no usable discrete prompt (template) to retrieve memory with. */
export class MissingTemplateError extends Error {
  override name = 'MissingTemplateError';
  constructor(
    readonly tasks: readonly string[],
    detail: string,
  ) {
    super(
      `spt: ${detail}: ${tasks.join(', ')}. SPT retrieves memory by each task's template token ids (MethodContext.templates)`,
    );
  }
}

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
 * SPT, semi-parametric prompt tuning (Bari et al. 2022). Only the paper's abstract is public and no code exists:
 * this design is OURS, built from what the abstract fixes (a memory bank of prompts, retrieved by the discrete
 * prompt of the example's task, combined with a parametric prompt, trained multi-task).
 * ```
 * M [m, l, d]   memory prompts, K [m, d] their keys                     trainable, shared (group 'memory')
 * P [n, d]      parametric prompt, shared or one per task                trainable (group 'prompt')
 * z     = mean over tokens of the frozen embedding of the task's template      [B, d]
 * s_i   = cos(z, K_i) / tau ;  top-k slots by s ;  w = softmax over the k retrieved s
 * P_mem = sum_{i in top-k} w_i M_i                                       [B, l, d]
 * encoder input = [P_mem ; P ; E]
 * ```
 * Retrieval is per example, so a batch may mix tasks and templates. The top-k choice is read back to the host
 * (tf.topk has no gradient); s is then recomputed from the gathered keys, so retrieved keys get gradient through
 * w and retrieved memory slots through the weighted sum, and unretrieved slots and keys get exactly zero.
 * With a shared prompt, a task unseen in training works zero-shot as long as its template is in
 * `MethodContext.templates` at creation.
 */
export class Spt implements PromptMethod {
  readonly name = 'spt';
  readonly params: MethodParam[] = [];
  readonly frozen = new Map<string, tf.Tensor>();
  /** Tasks with a template, in row order of `templateMeans`: the method's tasks first, then extra templates. */
  readonly templateTasks: readonly string[];
  /** [tasks with a template, d]: unit-norm template means (z / |z|), frozen. */
  private readonly templateMeans: tf.Tensor2D;
  private readonly d: number;

  constructor(
    readonly config: SptConfig,
    readonly tasks: readonly string[],
    ctx: MethodContext,
  ) {
    this.d = ctx.model.config.dModel;
    const templates = ctx.templates ?? {};
    const missing = tasks.filter((t) => !(t in templates));
    if (missing.length > 0) throw new MissingTemplateError(missing, 'no template for');
    const extra = Object.keys(templates)
      .filter((t) => !tasks.includes(t))
      .sort();
    this.templateTasks = [...tasks, ...extra];
    this.templateMeans = this.meanTemplates(ctx.model, templates);
    try {
      const specs = describe(config, { dModel: this.d, vocabSize: ctx.model.config.vocabSize, tasks });
      const made = materializeParams(this.name, specs, (spec) => this.initialValue(spec, ctx));
      this.params.push(...made.params);
      for (const [k, t] of made.frozen) this.frozen.set(k, t);
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  encoderInputs(model: T5Model, batch: PromptBatch): EncoderInputs {
    return tidyInputs(() => {
      const embeds = tokenEmbeddings(model, batch);
      const B = embeds.shape[0];
      const z = this.queries(batch.tasks);
      const { indices, k } = this.select(z);
      const idx = tf.tensor2d(indices, [B, k], 'int32');
      const w = this.weights(z, idx); // [B, k]
      const { memorySlots: m, memoryLength: l } = this.config;
      const slots = gatherRows(tf.reshape(this.tensor('memory'), [m, l * this.d]) as tf.Tensor2D, idx); // [B, k, l*d]
      const memPrompt = tf.reshape(tf.sum(tf.mul(slots, tf.expandDims(w, 2)), 1), [B, l, this.d]);
      const prompt = tf.concat([memPrompt, this.parametric(batch.tasks, B)], 1) as tf.Tensor3D;
      return prependPrompt(prompt, embeds, batch.attentionMask);
    });
  }

  /** The slots and weights each example of the batch retrieves (for inspection and tests). */
  retrieve(batch: PromptBatch): SptSelection {
    const z = this.queries(batch.tasks);
    try {
      const { indices, k } = this.select(z);
      const weights = tf.tidy(() =>
        this.weights(z, tf.tensor2d(indices, [batch.tasks.length, k], 'int32')).dataSync(),
      ) as Float32Array;
      return { indices, weights: Float32Array.from(weights), k };
    } finally {
      z.dispose();
    }
  }

  touchedParams(batchTasks: readonly string[]): string[] {
    const memory = this.config.freezeMemory ? [] : ['memory', 'keys'];
    if (this.config.sharedPrompt) return [...memory, 'prompt'];
    const present = new Set(batchTasks);
    const prompts = this.params.filter((p) => p.task !== undefined && present.has(p.task)).map((p) => p.name);
    return [...memory, ...prompts];
  }

  dispose(): void {
    for (const p of this.params) p.variable.dispose();
    for (const t of this.frozen.values()) t.dispose();
    this.params.length = 0;
    this.frozen.clear();
    this.templateMeans.dispose();
  }

  private tensor(name: string): tf.Tensor {
    const t = this.params.find((p) => p.name === name)?.variable ?? this.frozen.get(name);
    if (!t) throw new Error(`spt: internal: no tensor '${name}'`);
    return t;
  }

  /** Unit-norm template means of each example's task: [B, d]. */
  private queries(batchTasks: readonly string[]): tf.Tensor2D {
    const rows = Int32Array.from(batchTasks, (t) => {
      const i = this.templateTasks.indexOf(t);
      if (i < 0) throw new MissingTemplateError([t], 'batch has a task without a template');
      return i;
    });
    return tf.tidy(() => tf.gather(this.templateMeans, tf.tensor1d(rows, 'int32')));
  }

  /** Top-k slots by cosine, read back to the host so that the choice stays off the gradient tape. */
  private select(z: tf.Tensor2D): { indices: Int32Array; k: number } {
    const k = this.config.topK;
    const indices = tf.tidy(() => {
      const keys = this.tensor('keys') as tf.Tensor2D;
      const unit = tf.div(keys, tf.sqrt(tf.add(tf.sum(tf.square(keys), 1, true), NORM_EPS)));
      return Int32Array.from(tf.topk(tf.matMul(z, unit, false, true), k).indices.dataSync());
    });
    return { indices, k };
  }

  /** w = softmax over the retrieved slots of cos(z, K_i) / tau, differentiable in the keys: [B, k]. */
  private weights(z: tf.Tensor2D, idx: tf.Tensor2D): tf.Tensor2D {
    const keys = gatherRows(this.tensor('keys') as tf.Tensor2D, idx) as tf.Tensor3D; // [B, k, d]
    const unit = tf.div(keys, tf.sqrt(tf.add(tf.sum(tf.square(keys), 2, true), NORM_EPS)));
    const cos = tf.sum(tf.mul(unit, tf.expandDims(z, 1)), 2);
    return tf.softmax(tf.div(cos, this.config.tau)) as tf.Tensor2D;
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

  private meanTemplates(model: T5Model, templates: Readonly<Record<string, readonly number[]>>): tf.Tensor2D {
    const V = model.config.vocabSize;
    const empty = this.templateTasks.filter((t) => templates[t]!.length === 0);
    if (empty.length > 0) throw new MissingTemplateError(empty, 'empty template for');
    const bad = this.templateTasks.filter((t) =>
      templates[t]!.some((id) => !Number.isInteger(id) || id < 0 || id >= V),
    );
    if (bad.length > 0)
      throw new MissingTemplateError(bad, `template ids outside the vocabulary [0, ${V}) for`);
    return tf.tidy(() => {
      const means = this.templateTasks.map((t) =>
        tf.mean(tf.gather(model.shared, tf.tensor1d(Int32Array.from(templates[t]!), 'int32')), 0),
      );
      const z = tf.stack(means) as tf.Tensor2D;
      return tf.div(z, tf.sqrt(tf.add(tf.sum(tf.square(z), 1, true), NORM_EPS)));
    });
  }

  private initialValue(spec: ParamSpec, ctx: MethodContext): Float32Array {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const field = spec.name === 'memory' ? 'memoryFrom' : spec.name === 'keys' ? 'keysFrom' : 'promptFrom';
    const from = this.config[field];
    if (from !== undefined) {
      const src = ctx.inputs?.get(from);
      if (!src) {
        throw new MethodConfigError(
          this.name,
          field,
          `no input tensor '${from}' (available: ${[...(ctx.inputs?.keys() ?? [])].join(', ') || 'none'})`,
        );
      }
      if (src.shape.join(',') !== spec.shape.join(',')) {
        throw new MethodConfigError(
          this.name,
          field,
          `'${from}' has shape [${src.shape.join(', ')}] but ${spec.name} is [${spec.shape.join(', ')}]`,
        );
      }
      return Float32Array.from(src.data);
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
    'Bari et al. 2022 (our design; no public code): memory prompts retrieved by the task template, ' +
    'mixed by softmax weights, before a parametric prompt',
  parseConfig: parseSptConfig,
  describe,
  create: (config, ctx) => new Spt(config, ctx.tasks, ctx),
  quickConfig: (flags) => (flags.promptLength !== undefined ? { promptLength: flags.promptLength } : {}),
};
