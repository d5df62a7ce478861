import type * as tf from '@tensorflow/tfjs-core';
import type { T5Model } from '../model/t5/index.js';
import type { HostTensor } from '../model/tensor-map.js';

/**
 * A training batch as methods see it: tokenized sources and targets plus each example's task. Methods prepend
 * their prompts to the embeddings of `inputIds`; the trainer computes the loss from what they return.
 */
export interface PromptBatch {
  /** [B, L] int32 source token ids (ending in </s>), padded with the pad id. */
  inputIds: tf.Tensor2D;
  /** [B, L] 1 for real tokens, 0 for padding. */
  attentionMask: tf.Tensor2D;
  /** [B, T] int32 target token ids. */
  labels: tf.Tensor2D;
  /** [B, T] 1 where the target token counts. */
  labelMask: tf.Tensor2D;
  /** Task name of each example (length B). */
  tasks: readonly string[];
}

/** What a method hands the frozen encoder. */
export interface EncoderInputs {
  /** [B, P + L, d]: prompt rows followed by the token embeddings. */
  inputsEmbeds: tf.Tensor3D;
  /** [B, P + L]: ones for the prompt rows, then the batch's mask. */
  attentionMask: tf.Tensor2D;
  /** P, the prompt rows in front (set by prependPrompt); the rest are the input's, which a method may have padded. */
  promptRows?: number;
}

/** Learning-rate groups a method may put parameters in; the trainer maps each to its own rate. */
export type ParamGroup = 'prompt' | 'attention' | 'bank' | 'memory';

/** One tensor of a method, described without any weights (for `promptmesh describe` and for creation). */
export interface ParamSpec {
  name: string;
  shape: number[];
  group: ParamGroup;
  trainable: boolean;
  /** Set when the tensor belongs to one task only (its count goes to that task in the accounting). */
  task?: string;
}

/** A trainable tensor of a live method. */
export interface MethodParam {
  name: string;
  variable: tf.Variable;
  group: ParamGroup;
  task?: string;
}

export interface PromptMethod {
  readonly name: string;
  readonly tasks: readonly string[];
  /** Trainable tensors, in the fixed order of `describe()`. */
  readonly params: readonly MethodParam[];
  /** Frozen tensors the method owns (source prompts, a shared bank), saved with it for reproducibility. */
  readonly frozen: ReadonlyMap<string, tf.Tensor>;
  /** Prepends the method's prompts. Called inside the trainer's gradient scope; must not leak tensors. */
  encoderInputs(model: T5Model, batch: PromptBatch): EncoderInputs;
  /** Names of the params that get a gradient from this batch; the rest get exactly zero (sparse all-reduce). */
  touchedParams(batchTasks: readonly string[]): string[];
  /**
   * What the method decided for each example of the batch, for parity checks (`promptmesh method run`) and
   * analyses: ATTEMPT's attention weights, TPT's and SPT's retrieved rows. Absent: the method decides nothing per
   * example (prompt tuning).
   */
  inspect?(model: T5Model, batch: PromptBatch): MethodInspection;
  dispose(): void;
}

/** Per-example decisions of a method (see PromptMethod.inspect); a field is absent where the method has none. */
export interface MethodInspection {
  /** [B][J] attention weights over the candidate prompts (ATTEMPT: the sources in config order, then the target). */
  weights?: number[][];
  /** [B][k] retrieved row or slot indices (TPT: bank rows in bank order; SPT: memory slots by descending score). */
  retrieved?: number[][];
}

/** Dimensions needed to describe a method without loading a backbone. */
export interface MethodDims {
  dModel: number;
  vocabSize: number;
  tasks: readonly string[];
}

/** Everything a method may use to initialise itself. */
export interface MethodContext {
  model: T5Model;
  tasks: readonly string[];
  seed: number;
  /** Tensors from earlier stages (trained source prompts, a token bank), by name. */
  inputs?: ReadonlyMap<string, HostTensor>;
  /**
   * The job's `maxSourceLength`: every input is truncated to it. The released ATTEMPT and TPT also pad every input
   * to it (their max_source_length), which is what ATTEMPT's `poolPadding` and TPT's `maskPadding: false` reproduce;
   * they need it and say so when it is absent.
   */
  maxSourceLength?: number;
  /**
   * The method's own tensors, by their `describe()` names: a trained state to run as it is. When given, every
   * tensor of `describe()` (trainable and frozen) is taken from here, no initialiser and no stage input is read,
   * and a missing tensor or a wrong shape is an error naming it (MissingMethodTensorError,
   * MethodTensorShapeError). Extra tensors (optimizer moments in a bank version) are ignored.
   */
  restore?: ReadonlyMap<string, HostTensor>;
}

/** A method plug-in: its config (defaults + validation), its accounting, and its construction. */
export interface MethodFactory<C = unknown> {
  name: string;
  summary: string;
  /** Defaults merged with `raw`, validated as a whole; errors name the field. */
  parseConfig(raw: Readonly<Record<string, unknown>>): C;
  /** The method's tensors for these dimensions; `create` builds exactly these. */
  describe(config: C, dims: MethodDims): ParamSpec[];
  create(config: C, ctx: MethodContext): PromptMethod;
  /**
   * Whether a method built with this config can run examples of a task it was not created with (zero-shot
   * evaluation on held-out tasks: every tensor it applies is shared by all tasks). Absent: it cannot.
   */
  servesUnseenTasks?(config: C): boolean;
  /**
   * The tensor that is task `task`'s whole prompt, the same for every input (what Hugging Face PEFT's prompt tuning
   * holds), among a trained state's tensor names; undefined when the state has none for the task. Absent: the method
   * builds each input's prompt from the input itself (ATTEMPT's per-input mixture, TPT/SPT retrieval), which one
   * fixed prompt cannot express.
   */
  fixedTaskPrompt?(tensorNames: readonly string[], task: string): string | undefined;
  /**
   * Training settings the method's authors used where the job config says nothing (neither the stage's `train`
   * nor the top-level one sets the field). Absent fields fall back to the job-wide defaults.
   */
  trainDefaults?: MethodTrainDefaults;
  /**
   * Translates `promptmesh describe`'s quick flags into this method's raw config (so the CLI needs no per-method
   * code). Absent: the flags map to nothing and the method's defaults apply.
   */
  quickConfig?(flags: QuickFlags): Record<string, unknown>;
}

/** Per-method defaults for fields of a stage's `train` settings. */
export interface MethodTrainDefaults {
  weightDecay?: number;
}

/** The method-independent flags of `promptmesh describe`. */
export interface QuickFlags {
  tasks: readonly string[];
  promptLength?: number;
  /** ATTEMPT: the LayerNorm of the attention module trainable (absent: the method's default). */
  trainableLayerNorm?: boolean;
  /** TPT: fine-tune the bank per task in stage 2. */
  tuneBank: boolean;
  /** ATTEMPT: number of (frozen) source prompts. */
  sources: number;
}

/** A method config field is missing, of the wrong type or inconsistent with another. */
export class MethodConfigError extends Error {
  override name = 'MethodConfigError';
  constructor(
    readonly method: string,
    readonly field: string,
    message: string,
  ) {
    super(`${method}.${field}: ${message}`);
  }
}

/** A trained state handed to a method (MethodContext.restore) lacks a tensor the method needs. */
export class MissingMethodTensorError extends Error {
  override name = 'MissingMethodTensorError';
  constructor(
    readonly method: string,
    readonly tensor: string,
    readonly needed: readonly { name: string; shape: number[] }[],
  ) {
    super(
      `${method}: no tensor '${tensor}'; with this config the method needs ${needed
        .map((n) => `${n.name} [${n.shape.join(', ')}]`)
        .join(', ')}`,
    );
  }
}

/** A tensor of a trained state handed to a method has another shape than the method's config gives it. */
export class MethodTensorShapeError extends Error {
  override name = 'MethodTensorShapeError';
  constructor(
    readonly method: string,
    readonly tensor: string,
    readonly got: readonly number[],
    readonly expected: readonly number[],
  ) {
    super(
      `${method}: tensor '${tensor}' has shape [${got.join(', ')}] but this config needs [${expected.join(', ')}]`,
    );
  }
}
