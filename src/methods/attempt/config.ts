import { ConfigReader } from '../config-fields.js';
import { MethodConfigError } from '../method.js';

/**
 * How the query q (B x d) that scores the candidate prompts is computed from x_hat, the max-pooled input
 * embeddings. Parameters each variant owns are listed; the candidate keys k_j and the softmax over k_j . q / T are
 * common to the first three.
 *
 * - 'sub'      (the paper's, default): q = LN(W_up . SiLU(W_down . x_hat)). Owns attention.down [d, r],
 *              attention.up [r, d], attention.ln.gamma/beta [d] (trainable only with `trainableLayerNorm`).
 * - 'linear':  q = LN(W_up . W_down . x_hat), the same without the SiLU. Same parameters as 'sub'.
 * - 'dot':     q = x_hat: the input itself is the query. No attention parameters.
 * - 'constant': a_j = 1 / (number of candidates) whatever the input. No attention parameters; `temperature`
 *              and `poolPadding` have no effect.
 */
export type AttentionVariant = 'sub' | 'linear' | 'dot' | 'constant';

export const ATTENTION_VARIANTS: readonly AttentionVariant[] = ['sub', 'linear', 'dot', 'constant'];

export interface AttemptConfig {
  /** n: tokens of the target prompt; every source prompt must have the same length (they are summed). */
  promptLength: number;
  /** r: width of the W_down / W_up bottleneck (100 in the paper). */
  attentionDim: number;
  attn: AttentionVariant;
  /** Softmax temperature T. Absent = d_model * e, the released code's value (2087 for d = 768). */
  temperature?: number;
  /** The target prompt is a candidate of its own attention (the paper). It is added as a residual either way. */
  includeTarget: boolean;
  /**
   * The query LayerNorm's gamma and beta are trained (the paper's parameter count, default) or stay at 1 / 0
   * (the released code, where they are created but never handed to the optimiser).
   */
  trainableLayerNorm: boolean;
  /** ATTEMPT-m: one target prompt per task with a shared attention module; false: one target prompt (shared by
   * every task of the stage, the paper's single-task setting when there is one). */
  multiTask: boolean;
  /**
   * true reproduces the released code, which pads every input to max_source_length and max-pools over all of it,
   * so the pad embedding takes part whenever the example is shorter: x_hat is the max over the real tokens and, for
   * an example shorter than the job's maxSourceLength, the pad embedding. It depends on the example alone, never on
   * the batch. The encoder still masks the pads (the released code passes its attention mask). false (default):
   * real tokens only.
   */
  poolPadding: boolean;
  /** Names of the frozen source prompts in the stage inputs, each [n, d], in candidate order. */
  sources: string[];
  /** 'first-source': a copy of sources[0] (the paper: MNLI); 'vocab': frequent-token embedding rows. */
  targetInit: 'first-source' | 'vocab';
  /**
   * ATTEMPT-m's transfer (the released `load_attention` and `load_layer_norm`, set together in its multi-task
   * configs): start the attention module from an earlier stage's, read as `<attentionFrom>.down`, `.up`,
   * `.ln.gamma` and `.ln.beta` from the stage inputs ('attention' for an earlier ATTEMPT stage's own names).
   * Absent: W_down and W_up are drawn from N(0, 0.01^2) and the LayerNorm starts at 1 / 0, as released.
   */
  attentionFrom?: string;
}

const METHOD = 'attempt';

export function parseAttemptConfig(raw: Readonly<Record<string, unknown>>): AttemptConfig {
  const r = new ConfigReader(METHOD, raw);
  // The reader has no optional-number field; reading with a placeholder keeps 'temperature' among the known
  // options, and its absence (not the placeholder) selects the d-dependent default.
  const hasTemperature = 'temperature' in raw && raw.temperature !== undefined;
  const temperature = r.number('temperature', 1);
  if (hasTemperature && !(temperature > 0)) {
    throw new MethodConfigError(METHOD, 'temperature', `must be > 0, got ${temperature}`);
  }
  const attentionFrom = r.optionalString('attentionFrom');
  const cfg: AttemptConfig = {
    promptLength: r.int('promptLength', 100, 1),
    attentionDim: r.int('attentionDim', 100, 1),
    attn: r.oneOf('attn', ATTENTION_VARIANTS, 'sub'),
    includeTarget: r.bool('includeTarget', true),
    trainableLayerNorm: r.bool('trainableLayerNorm', true),
    multiTask: r.bool('multiTask', false),
    poolPadding: r.bool('poolPadding', false),
    sources: r.stringList('sources', []),
    targetInit: r.oneOf('targetInit', ['first-source', 'vocab'] as const, 'first-source'),
    ...(hasTemperature ? { temperature } : {}),
    ...(attentionFrom !== undefined ? { attentionFrom } : {}),
  };
  r.done();

  if (cfg.sources.length === 0) {
    throw new MethodConfigError(
      METHOD,
      'sources',
      'ATTEMPT attends over trained source prompts: list at least one (names of [n, d] tensors in the stage inputs)',
    );
  }
  const empty = cfg.sources.findIndex((s) => s.length === 0);
  if (empty >= 0) throw new MethodConfigError(METHOD, 'sources', `entry ${empty} is an empty name`);
  const dup = cfg.sources.find((s, i) => cfg.sources.indexOf(s) !== i);
  if (dup !== undefined) {
    throw new MethodConfigError(
      METHOD,
      'sources',
      `'${dup}' is listed twice; each source prompt is one candidate`,
    );
  }
  if (cfg.attentionFrom !== undefined && cfg.attentionFrom.length === 0) {
    throw new MethodConfigError(
      METHOD,
      'attentionFrom',
      "is empty; give a tensor-name prefix such as 'attention'",
    );
  }
  if (cfg.attentionFrom !== undefined && (cfg.attn === 'dot' || cfg.attn === 'constant')) {
    throw new MethodConfigError(
      METHOD,
      'attentionFrom',
      `attn '${cfg.attn}' has no attention module to load`,
    );
  }
  return cfg;
}

/** T = d * e unless configured. */
export function attemptTemperature(config: AttemptConfig, dModel: number): number {
  return config.temperature ?? dModel * Math.E;
}
