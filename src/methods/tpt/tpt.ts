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
import { MethodConfigError } from '../method.js';
import { MethodBase, readStageInput } from '../method-base.js';
import {
  maskedMaxPool,
  maskedMeanPool,
  padEmbedding,
  prependPrompt,
  taskIndices,
  tidyInputs,
  tokenEmbeddings,
  uniformInit,
  vocabInit,
} from '../prompt-ops.js';
import { parseTptConfig, resolveBankSource, type TptConfig } from './config.js';
import { rangeInit } from './range-init.js';

const BANK_INIT_RANGE = [100, 1000] as const;
const PROMPT_INIT_RANGE = [100, 600] as const;
/** Keeps the softTopK standardisation finite when the k retrieved scores are (nearly) equal. */
const STANDARDIZE_EPS = 1e-6;

function bankName(config: TptConfig, task: string | undefined): string {
  return config.tuneBank ? `bank.${task}` : 'bank';
}

function describe(config: TptConfig, dims: MethodDims): ParamSpec[] {
  const bankShape = [config.bankSize, dims.dModel];
  if (config.stage === 'bank') return [{ name: 'bank', shape: bankShape, group: 'bank', trainable: true }];
  const banks: ParamSpec[] = config.tuneBank
    ? dims.tasks.map((task) => ({
        name: bankName(config, task),
        shape: bankShape,
        group: 'bank',
        trainable: true,
        task,
      }))
    : [{ name: 'bank', shape: bankShape, group: 'bank', trainable: false }];
  const prompts: ParamSpec[] = dims.tasks.map((task) => ({
    name: `prompt.${task}`,
    shape: [config.taskPromptLength, dims.dModel],
    group: 'prompt',
    trainable: true,
    task,
  }));
  return [...banks, ...prompts];
}

/** The input tensor a task's prompt starts from, if `promptFrom` names one. */
function promptSource(config: TptConfig, task: string): string | undefined {
  const from = config.promptFrom;
  return typeof from === 'string' ? from : from?.[task];
}

/** A per-task `promptFrom` naming a task the stage does not train is a typo, not a no-op. */
function checkPromptFromTasks(config: TptConfig, tasks: readonly string[]): void {
  if (config.promptFrom === undefined || typeof config.promptFrom === 'string') return;
  const stray = Object.keys(config.promptFrom).find((t) => !tasks.includes(t));
  if (stray !== undefined) {
    throw new MethodConfigError(
      'tpt',
      'promptFrom',
      `names task '${stray}', which this stage does not train (${tasks.join(', ')})`,
    );
  }
}

/** Which bank rows each example retrieved. */
export interface TptSelection {
  /** [B * k] bank row ids, ascending within each example (bank order). */
  indices: Int32Array;
  /** Rows per example (k). */
  k: number;
}

/**
 * TPT, token-wise prompt tuning (Wu et al., Findings of EMNLP 2023), following the released code (mlwu22/TPT).
 *
 * A token bank B [N, d] is shared by all tasks. For frozen input embeddings E [B, L, d]:
 * ```
 * q      = pool over positions of E                      maxPooling / softTopK: max; avgPooling: mean
 * scores = q . B^T                                       [B, N], raw dot product
 * idx    = sort_ascending(topk(scores, k))               k distinct rows, kept in bank order
 * P_ret  = B[idx]                                        [B, k, d]; hard selection: only chosen rows get gradient
 * encoder input = [P_ret ; E]            stage 'bank'   (the bank alone trains, as in the released stage 1)
 *                 [P_ret ; P_task ; E]   stage 'target' (P_task of the example's task trains)
 * ```
 * softTopK (ours: the released `top_k` selector mixes every bank row with weights over input positions and is
 * not a top-k of the bank) keeps the hard top-k above and weights the chosen rows, smoothly in the scores:
 * ```
 * s_j   = q . B[idx_j]                                   j = 1..k
 * z_j   = (s_j - mean(s)) / sqrt(var(s) + 1e-6)          if softTopKStandardize (default), else s_j
 * w     = softmax(z / softTopKTemperature)
 * P_ret = k * w_j * B[idx_j]                             equal scores reproduce hard selection exactly
 * ```
 * Raw T5 embedding dot products span hundreds of units, so an unstandardised softmax is one-hot in practice;
 * standardising makes the weights scale-free. Gradient still reaches only the chosen rows (through w too).
 *
 * Differences from the released code, all deliberate: pads are masked out of the pooling and the encoder
 * (`maskPadding: false` restores the released code: every input padded to maxSourceLength, no mask), avgPooling also keeps bank order (the released avg_pooling skips the sort), and stage 2's bank is
 * frozen and shared by default (`tuneBank: true` is the released per-task fine-tuning).
 *
 * Retrieval indices are read back to the host each call: tf.topk has no gradient, and reading the ids cuts them off
 * the tape so that the bank's gradient flows only through the gathered rows.
 */
export class Tpt extends MethodBase {
  readonly name = 'tpt';
  private readonly d: number;
  /** `maskPadding: false`: the length every input is padded to, and the pad embedding [d] it is padded with. */
  private readonly fixedPad: { length: number; pad: tf.Tensor1D } | undefined;

  constructor(
    readonly config: TptConfig,
    tasks: readonly string[],
    ctx: MethodContext,
  ) {
    super(tasks);
    this.d = ctx.model.config.dModel;
    const specs = describe(config, { dModel: this.d, vocabSize: ctx.model.config.vocabSize, tasks });
    checkPromptFromTasks(config, tasks);
    if (!config.maskPadding && ctx.maxSourceLength === undefined) {
      throw new MethodConfigError(
        this.name,
        'maskPadding',
        'false pads every input to the fixed length every input is truncated to (the released max_length 256); ' +
          "create the method with the job's maxSourceLength",
      );
    }
    // A restored state (ctx.restore) carries the bank itself: no stage input is read.
    const bankData = ctx.restore ? new Float32Array(0) : this.bankValue(ctx);
    try {
      // Each bank copy gets its own buffer: some backends keep the array handed to tf.tensor.
      this.materialize(
        specs,
        (spec) => (spec.group === 'bank' ? bankData.slice() : this.promptValue(spec, ctx)),
        ctx.restore,
      );
      this.fixedPad = config.maskPadding
        ? undefined
        : { length: ctx.maxSourceLength!, pad: this.derive(padEmbedding(ctx.model)) };
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  encoderInputs(model: T5Model, batch: PromptBatch): EncoderInputs {
    return tidyInputs(() => {
      const { embeds, mask } = this.inputs(model, batch);
      const q = this.query(embeds, mask);
      const taskIdx =
        this.config.stage === 'target' ? taskIndices(this.tasks, batch.tasks, this.name) : undefined;
      const { indices, k } = this.selectRows(q, taskIdx);
      const retrieved = this.gatherRetrieved(indices, k, taskIdx);
      const weighted = this.config.selector === 'softTopK' ? this.softWeights(q, retrieved) : retrieved;
      let prompt = weighted;
      if (taskIdx) prompt = tf.concat([weighted, this.taskPrompts(taskIdx)], 1) as tf.Tensor3D;
      return prependPrompt(prompt, embeds, mask);
    });
  }

  /** The rows each example of the batch retrieves (for inspection and tests). */
  retrieve(model: T5Model, batch: PromptBatch): TptSelection {
    const taskIdx =
      this.config.stage === 'target' ? taskIndices(this.tasks, batch.tasks, this.name) : undefined;
    const q = tf.tidy(() => {
      const { embeds, mask } = this.inputs(model, batch);
      return this.query(embeds, mask);
    });
    try {
      return this.selectRows(q, taskIdx);
    } finally {
      q.dispose();
    }
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
   * The input embeddings [B, L, d] and their mask. With `maskPadding: false` (the released code) every example is
   * padded to the fixed length with the pad embedding and the mask is all ones: the pooling and the encoder see the
   * same pads whatever the example is batched with, so its result depends on the example alone.
   */
  private inputs(model: T5Model, batch: PromptBatch): { embeds: tf.Tensor3D; mask: tf.Tensor2D } {
    const embeds = tokenEmbeddings(model, batch);
    if (!this.fixedPad) return { embeds, mask: batch.attentionMask };
    const [B, L, d] = embeds.shape;
    const F = this.fixedPad.length;
    if (L > F) {
      throw new Error(
        `tpt: maskPadding false pads every input to maxSourceLength ${F}, but this batch has ${L} positions ` +
          '(inputs must be truncated to maxSourceLength)',
      );
    }
    const padRows = tf.tile(tf.reshape(this.fixedPad.pad, [1, 1, d]), [B, F - L, 1]) as tf.Tensor3D;
    return {
      embeds: L === F ? embeds : (tf.concat([embeds, padRows], 1) as tf.Tensor3D),
      mask: tf.ones([B, F]) as tf.Tensor2D,
    };
  }

  /** Pools over the positions the mask marks real: every position with `maskPadding: false` (see `inputs`). */
  private query(embeds: tf.Tensor3D, mask: tf.Tensor2D): tf.Tensor2D {
    if (this.config.selector === 'avgPooling') return maskedMeanPool(embeds, mask);
    return maskedMaxPool(embeds, mask);
  }

  /** The bank each example retrieves from: [N, d] shared, or [B, N, d] with one bank per task. */
  private banks(): tf.Tensor {
    const bank = this.params.find((p) => p.name === 'bank')?.variable ?? this.frozen.get('bank');
    if (bank) return bank;
    return tf.stack(this.params.filter((p) => p.group === 'bank').map((p) => p.variable));
  }

  private selectRows(q: tf.Tensor2D, taskIdx: Int32Array | undefined): TptSelection {
    const k = this.config.topK;
    const B = q.shape[0];
    const raw = tf.tidy(() => {
      const banks = this.banks();
      let scores: tf.Tensor2D;
      if (banks.rank === 2) {
        scores = tf.matMul(q, banks as tf.Tensor2D, false, true);
      } else {
        const perExample = tf.gather(banks, tf.tensor1d(taskIdx!, 'int32')) as tf.Tensor3D; // [B, N, d]
        scores = tf.reshape(tf.matMul(tf.expandDims(q, 1), perExample, false, true), [B, -1]);
      }
      return Int32Array.from(tf.topk(scores, k).indices.dataSync());
    });
    const indices = new Int32Array(raw.length);
    for (let b = 0; b < B; b++) indices.set(raw.subarray(b * k, (b + 1) * k).sort(), b * k);
    return { indices, k };
  }

  private gatherRetrieved(indices: Int32Array, k: number, taskIdx: Int32Array | undefined): tf.Tensor3D {
    const B = indices.length / k;
    const N = this.config.bankSize;
    if (this.config.tuneBank) {
      const stacked = tf.reshape(this.banks(), [-1, this.d]) as tf.Tensor2D; // [tasks * N, d]
      const flat = Int32Array.from(indices, (row, i) => taskIdx![Math.floor(i / k)]! * N + row);
      return gatherRows(stacked, tf.tensor2d(flat, [B, k], 'int32')) as tf.Tensor3D;
    }
    return gatherRows(this.banks() as tf.Tensor2D, tf.tensor2d(indices, [B, k], 'int32')) as tf.Tensor3D;
  }

  private softWeights(q: tf.Tensor2D, rows: tf.Tensor3D): tf.Tensor3D {
    const k = rows.shape[1];
    let s = tf.sum(tf.mul(tf.expandDims(q, 1), rows), 2) as tf.Tensor2D; // [B, k]
    if (this.config.softTopKStandardize) {
      const { mean, variance } = tf.moments(s, 1, true);
      s = tf.div(tf.sub(s, mean), tf.sqrt(tf.add(variance, STANDARDIZE_EPS)));
    }
    const w = tf.softmax(tf.div(s, this.config.softTopKTemperature));
    return tf.mul(rows, tf.expandDims(tf.mul(w, k), 2)) as tf.Tensor3D;
  }

  private taskPrompts(taskIdx: Int32Array): tf.Tensor3D {
    const prompts = this.params.filter((p) => p.group === 'prompt').map((p) => p.variable);
    const n = this.config.taskPromptLength;
    const stacked = tf.reshape(tf.stack(prompts), [prompts.length, n * this.d]) as tf.Tensor2D;
    const picked = gatherRows(stacked, tf.tensor1d(taskIdx, 'int32'));
    return tf.reshape(picked, [taskIdx.length, n, this.d]) as tf.Tensor3D;
  }

  private bankValue(ctx: MethodContext): Float32Array {
    const N = this.config.bankSize;
    const source = resolveBankSource(this.config);
    if ('from' in source) {
      return readStageInput(this.name, ctx.inputs, 'bankFrom', source.from, {
        shape: [N, this.d],
        target: "'bank'",
        shapeNote: '(bankSize x dModel)',
      });
    }
    return source.init === 'vocab'
      ? rangeInit(ctx.model, N, BANK_INIT_RANGE, ctx.seed, 'bank')
      : uniformInit(N * this.d, 0.5, ctx.seed, 'bank');
  }

  private promptValue(spec: ParamSpec, ctx: MethodContext): Float32Array {
    const n = spec.shape[0]!;
    const from = promptSource(this.config, spec.task!);
    if (from !== undefined) {
      return readStageInput(this.name, ctx.inputs, 'promptFrom', from, {
        shape: spec.shape,
        target: `'${spec.name}'`,
        context: `for task '${spec.task}'`,
        shapeNote: '(taskPromptLength x dModel)',
      });
    }
    switch (this.config.promptInit) {
      case 'frequent':
        return rangeInit(ctx.model, n, PROMPT_INIT_RANGE, ctx.seed, spec.name);
      case 'vocab':
        return vocabInit(ctx.model, n, ctx.seed, spec.name);
      case 'uniform':
        return uniformInit(n * this.d, 0.5, ctx.seed, spec.name);
    }
  }
}

export const tpt: MethodFactory<TptConfig> = {
  name: 'tpt',
  summary:
    'Wu et al. 2023: a shared token bank; each example retrieves its top-k rows by input similarity, ' +
    'prepended before a per-task prompt',
  parseConfig: parseTptConfig,
  describe,
  create: (config, ctx) => new Tpt(config, ctx.tasks, ctx),
  // Stage 2 (target) is what the papers' per-task counts describe; the bank source does not change the count.
  quickConfig: (flags) => ({
    tuneBank: flags.tuneBank,
    ...(flags.promptLength !== undefined ? { taskPromptLength: flags.promptLength } : {}),
  }),
};
