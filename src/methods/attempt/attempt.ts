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
  normalInit,
  padEmbedding,
  prependPrompt,
  taskIndices,
  tidyInputs,
  tokenEmbeddings,
  vocabInit,
} from '../prompt-ops.js';
import {
  type AttentionModule,
  attentionQuery,
  candidateLogits,
  type InputPooling,
  mixPrompts,
  poolInput,
} from './attention.js';
import { type AttemptConfig, attemptTemperature, parseAttemptConfig } from './config.js';

const NAME = 'attempt';
/** The paper's six source tasks, in its order (MNLI first: it initialises the target prompt). */
export const PAPER_SOURCES = ['mnli', 'sst2', 'qnli', 'qqp', 'squad', 'record'] as const;

export const ATTENTION_DOWN = 'attention.down';
export const ATTENTION_UP = 'attention.up';
export const ATTENTION_LN_GAMMA = 'attention.ln.gamma';
export const ATTENTION_LN_BETA = 'attention.ln.beta';
/** Std of the N(0, std^2) the released code draws W_down and W_up from. */
export const ATTENTION_INIT_STD = 0.01;
/** The attention module's tensors, by their name without the 'attention.' prefix (what `attentionFrom` reads). */
const MODULE_PARTS = ['down', 'up', 'ln.gamma', 'ln.beta'] as const;

export function targetName(config: AttemptConfig, task: string | undefined): string {
  return config.multiTask ? `target.${task}` : 'target';
}

export function sourceName(source: string): string {
  return `source.${source}`;
}

function hasAttentionModule(config: AttemptConfig): boolean {
  return config.attn === 'sub' || config.attn === 'linear';
}

/**
 * Every tensor of the method, in a fixed order: target prompt(s) (group 'prompt'), the attention module
 * (group 'attention', so the trainer can give it its own learning rate: the released code's separate rate never
 * took effect), then the frozen source prompts. With `trainableLayerNorm: false` the LayerNorm is still listed,
 * frozen at gamma = 1, beta = 0, because the forward pass uses it.
 */
function describe(config: AttemptConfig, dims: MethodDims): ParamSpec[] {
  const n = config.promptLength;
  const d = dims.dModel;
  const r = config.attentionDim;
  const specs: ParamSpec[] = config.multiTask
    ? dims.tasks.map((task) => ({
        name: targetName(config, task),
        shape: [n, d],
        group: 'prompt',
        trainable: true,
        task,
      }))
    : [{ name: targetName(config, undefined), shape: [n, d], group: 'prompt', trainable: true }];
  if (hasAttentionModule(config)) {
    const ln = config.trainableLayerNorm;
    specs.push(
      { name: ATTENTION_DOWN, shape: [d, r], group: 'attention', trainable: true },
      { name: ATTENTION_UP, shape: [r, d], group: 'attention', trainable: true },
      { name: ATTENTION_LN_GAMMA, shape: [d], group: 'attention', trainable: ln },
      { name: ATTENTION_LN_BETA, shape: [d], group: 'attention', trainable: ln },
    );
  }
  for (const s of config.sources) {
    specs.push({ name: sourceName(s), shape: [n, d], group: 'prompt', trainable: false });
  }
  return specs;
}

/**
 * The attention module of an earlier stage (the released `load_attention` + `load_layer_norm`): W_down, W_up and
 * the LayerNorm's gamma and beta, read as `<attentionFrom>.down`, `.up`, `.ln.gamma`, `.ln.beta` from the stage
 * inputs, each checked against this stage's shape. Undefined when nothing is to be loaded.
 */
function readAttentionModule(
  config: AttemptConfig,
  specs: readonly ParamSpec[],
  ctx: MethodContext,
): Map<string, Float32Array> | undefined {
  const prefix = config.attentionFrom;
  // parseAttemptConfig only allows attentionFrom for the variants that own a module.
  if (prefix === undefined) return undefined;
  const out = new Map<string, Float32Array>();
  for (const part of MODULE_PARTS) {
    const to = `attention.${part}`;
    const value = readStageInput(NAME, ctx.inputs, 'attentionFrom', `${prefix}.${part}`, {
      shape: specs.find((s) => s.name === to)!.shape,
      target: `'${to}'`,
      hint: 'an earlier ATTEMPT stage writes it',
      shapeNote: '(d_model and attentionDim must match the stage it was trained in)',
    });
    out.set(to, value);
  }
  return out;
}

/**
 * ATTEMPT (Asai et al., EMNLP 2022), METHODS.md section 2. For input embeddings E [B, L, d]:
 *   x_hat = max-pool of E over real positions (with `poolPadding`, over E padded to maxSourceLength with the pad
 *   token, as released: batch-independent, see poolInput); k_j = max over the n tokens of candidate C_j (sources, then the
 *   example's target prompt); a = softmax_j(k_j . q / T) with q from AttentionVariant;
 *   P_ins = sum_j a_j C_j + P_tgt; encoder input [P_ins ; E].
 * Gradients reach the target prompt through the mix, the residual and its key, and the attention module through
 * q; the source prompts and the backbone are constants.
 */
export class Attempt extends MethodBase {
  readonly name = NAME;
  readonly temperature: number;
  /** [t, n, d] the source prompts stacked in candidate order. */
  private readonly sourceStack: tf.Tensor3D;
  /** [t, d] k_j of the sources: constant, so computed once. */
  private readonly sourceKeys: tf.Tensor2D;
  private readonly targets: tf.Variable[];
  private readonly module: AttentionModule | undefined;
  private readonly pooling: InputPooling;

  constructor(
    readonly config: AttemptConfig,
    tasks: readonly string[],
    ctx: MethodContext,
  ) {
    super(tasks);
    const d = ctx.model.config.dModel;
    this.temperature = attemptTemperature(config, d);
    if (config.multiTask && tasks.length === 0) {
      throw new MethodConfigError(NAME, 'multiTask', 'needs at least one task to create target prompts for');
    }
    const specs = describe(config, { dModel: d, vocabSize: ctx.model.config.vocabSize, tasks });
    if (config.poolPadding && ctx.maxSourceLength === undefined) {
      throw new MethodConfigError(
        NAME,
        'poolPadding',
        'pools the input padded to the fixed length every input is truncated to (the released max_source_length); ' +
          "create the method with the job's maxSourceLength",
      );
    }
    // A restored state (ctx.restore) carries the sources and the module itself: no stage input is read.
    const sourceData = ctx.restore ? new Map<string, Float32Array>() : this.readSources(ctx, d);
    const moduleData = ctx.restore ? undefined : readAttentionModule(config, specs, ctx);
    try {
      this.materialize(specs, (spec) => this.initialValue(spec, ctx, sourceData, moduleData), ctx.restore);
      this.targets = this.params.filter((p) => p.group === 'prompt').map((p) => p.variable);
      this.module = hasAttentionModule(config)
        ? {
            down: this.tensor(ATTENTION_DOWN) as tf.Tensor2D,
            up: this.tensor(ATTENTION_UP) as tf.Tensor2D,
            gamma: this.tensor(ATTENTION_LN_GAMMA) as tf.Tensor1D,
            beta: this.tensor(ATTENTION_LN_BETA) as tf.Tensor1D,
          }
        : undefined;
      this.sourceStack = this.derive(
        tf.stack(config.sources.map((s) => this.tensor(sourceName(s)))) as tf.Tensor3D,
      );
      this.sourceKeys = this.derive(tf.tidy(() => tf.max(this.sourceStack, 1) as tf.Tensor2D));
      this.pooling = config.poolPadding
        ? { padTo: ctx.maxSourceLength!, pad: this.derive(padEmbedding(ctx.model)) }
        : {};
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  encoderInputs(model: T5Model, batch: PromptBatch): EncoderInputs {
    return tidyInputs(() => {
      const embeds = tokenEmbeddings(model, batch);
      const target = this.batchTargets(batch);
      const weights = this.weights(embeds, batch.attentionMask, target);
      return prependPrompt(mixPrompts(weights, this.sourceStack, target), embeds, batch.attentionMask);
    });
  }

  /**
   * a [B, J] for each example, over the sources in config order then (with `includeTarget`) the example's target
   * prompt: what ATTEMPT's interpretability analyses plot.
   */
  attentionWeights(model: T5Model, batch: PromptBatch): number[][] {
    return tf.tidy(() => {
      const embeds = tokenEmbeddings(model, batch);
      return this.weights(embeds, batch.attentionMask, this.batchTargets(batch)).arraySync();
    });
  }

  inspect(model: T5Model, batch: PromptBatch): MethodInspection {
    return { weights: this.attentionWeights(model, batch) };
  }

  /** The query input x_hat [B, d] (max-pooled input embeddings); the caller disposes it. */
  pooledInput(model: T5Model, batch: PromptBatch): tf.Tensor2D {
    return tf.tidy(() => poolInput(tokenEmbeddings(model, batch), batch.attentionMask, this.pooling));
  }

  /** Each example's target prompt, [B, n, d]. */
  private batchTargets(batch: PromptBatch): tf.Tensor3D {
    const B = batch.inputIds.shape[0];
    if (this.config.multiTask) {
      // gatherRows, not tf.gather: the latter's gradient needs a kernel wasm lacks. Targets of tasks absent from
      // the batch get exactly zero gradient (what touchedParams promises the sparse all-reduce).
      const [n, d] = this.targets[0]!.shape as [number, number];
      const all = tf.reshape(tf.stack(this.targets), [this.targets.length, n * d]) as tf.Tensor2D;
      const idx = tf.tensor1d(taskIndices(this.tasks, batch.tasks, this.name), 'int32');
      return tf.reshape(gatherRows(all, idx), [B, n, d]) as tf.Tensor3D;
    }
    return tf.tile(tf.expandDims(this.targets[0]!, 0), [B, 1, 1]) as tf.Tensor3D;
  }

  private weights(embeds: tf.Tensor3D, mask: tf.Tensor2D, target: tf.Tensor3D): tf.Tensor2D {
    const B = embeds.shape[0];
    const J = this.config.sources.length + (this.config.includeTarget ? 1 : 0);
    if (this.config.attn === 'constant') return tf.fill([B, J], 1 / J) as tf.Tensor2D;
    const xHat = poolInput(embeds, mask, this.pooling);
    const q = attentionQuery(this.config.attn, xHat, this.module);
    const targetKeys = this.config.includeTarget ? (tf.max(target, 1) as tf.Tensor2D) : undefined;
    return tf.softmax(candidateLogits(q, this.sourceKeys, targetKeys, this.temperature));
  }

  /** Source prompts by name from the stage inputs, each checked to be [n, d]. */
  private readSources(ctx: MethodContext, d: number): Map<string, Float32Array> {
    const n = this.config.promptLength;
    const out = new Map<string, Float32Array>();
    for (const s of this.config.sources) {
      const value = readStageInput(NAME, ctx.inputs, 'sources', s, {
        shape: [n, d],
        target: `'${sourceName(s)}'`,
        hint: 'train it with prompt-tuning first',
        shapeNote: '(promptLength x d_model)',
      });
      out.set(s, value);
    }
    return out;
  }

  private initialValue(
    spec: ParamSpec,
    ctx: MethodContext,
    sources: Map<string, Float32Array>,
    module: Map<string, Float32Array> | undefined,
  ): Float32Array {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    if (spec.name.startsWith('source.')) return Float32Array.from(sources.get(spec.name.slice(7))!);
    if (spec.group === 'prompt') {
      return this.config.targetInit === 'first-source'
        ? Float32Array.from(sources.get(this.config.sources[0]!)!)
        : vocabInit(ctx.model, spec.shape[0]!, ctx.seed, `${NAME}/${spec.name}`);
    }
    if (module) {
      const loaded = module.get(spec.name);
      if (loaded) return Float32Array.from(loaded);
    }
    // The released code (T5PreTrainedModel._init_weights, its bare nn.Linear branch) redraws every nn.Linear
    // outside the T5 blocks as N(0, 0.01); attn_W_down / attn_W_up have no bias (bias=False). Its nn.LayerNorm is
    // not a T5LayerNorm, so _init_weights leaves torch's 1 / 0 there.
    if (spec.name === ATTENTION_DOWN || spec.name === ATTENTION_UP) {
      return normalInit(size, ATTENTION_INIT_STD, ctx.seed, `${NAME}/${spec.name}`);
    }
    if (spec.name === ATTENTION_LN_GAMMA) return new Float32Array(size).fill(1);
    if (spec.name === ATTENTION_LN_BETA) return new Float32Array(size);
    throw new Error(`internal: no initialiser for ${spec.name}`);
  }
}

export const attempt: MethodFactory<AttemptConfig> = {
  name: NAME,
  summary:
    'Asai et al. 2022: input-dependent attention over frozen source prompts plus a trainable target prompt',
  parseConfig: parseAttemptConfig,
  describe,
  create: (config, ctx) => new Attempt(config, ctx.tasks, ctx),
  // The released ATTEMPT configs set no weight_decay (Hugging Face's default, 0), and its separate-rate optimizer
  // is transformers.AdamW, whose default is 0 too.
  trainDefaults: { weightDecay: 0 },
  quickConfig: (flags) => ({
    multiTask: flags.tasks.length > 1,
    ...(flags.trainableLayerNorm !== undefined ? { trainableLayerNorm: flags.trainableLayerNorm } : {}),
    sources: Array.from({ length: flags.sources }, (_, i) => PAPER_SOURCES[i] ?? `source${i + 1}`),
    ...(flags.promptLength !== undefined ? { promptLength: flags.promptLength } : {}),
  }),
};
