/**
 * The T5 hyper-parameters promptmesh needs, read from and written to a Hugging Face `config.json` with the
 * same field names, defaults and activation rules as transformers' `T5Config`, so a folder saved by
 * `save_pretrained` loads here and a folder written here loads in transformers.
 */
export interface T5Config {
  vocabSize: number;
  dModel: number;
  dKv: number;
  dFf: number;
  numLayers: number;
  numDecoderLayers: number;
  numHeads: number;
  relativeAttentionNumBuckets: number;
  relativeAttentionMaxDistance: number;
  layerNormEpsilon: number;
  /**
   * `dropout_rate`: the probability with which training zeroes a unit at every place Hugging Face's T5 applies
   * dropout (transformers' default 0.1). Evaluation never applies it; a job may override it (`train.dropout`).
   */
  dropoutRate: number;
  /** 'relu': T5 v1.0 (DenseReluDense wi/wo). 'gated-gelu': v1.1/flan, gelu_new (tanh approximation) on wi_0. */
  feedForwardProj: 'relu' | 'gated-gelu';
  /** When true, lm_head is shared.weight and T5 scales the decoder output by dModel^-0.5 before it. */
  tieWordEmbeddings: boolean;
  padTokenId: number;
  eosTokenId: number;
  decoderStartTokenId: number;
  modelType: string;
}

/** config.json is missing a usable value or holds one promptmesh cannot run. */
export class T5ConfigError extends Error {
  override name = 'T5ConfigError';
  constructor(
    message: string,
    readonly source: string,
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// Model types whose checkpoints have exactly T5ForConditionalGeneration's tensors (mT5 differs only in
// tokenizer and defaults); umt5 has per-layer relative biases and is deliberately not accepted.
const SUPPORTED_MODEL_TYPES = new Set(['t5', 'mt5']);

// transformers' PretrainedConfig maps these generic names onto T5's own (T5Config.attribute_map).
const ATTRIBUTE_ALIASES: Record<string, string> = {
  d_model: 'hidden_size',
  num_heads: 'num_attention_heads',
  num_layers: 'num_hidden_layers',
  d_kv: 'head_dim',
};

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array ${JSON.stringify(v).slice(0, 60)}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.slice(0, 60))}`;
  return `${String(v)} (${typeof v})`;
}

/**
 * Parses a config.json object. `source` (usually the file path) is named in every error. Missing fields take
 * transformers' T5Config defaults; `decoder_start_token_id`, which transformers leaves unset, defaults to the
 * pad id because every released T5 starts decoding from pad.
 */
export function parseT5Config(json: unknown, source: string): T5Config {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new T5ConfigError(`${source}: expected a JSON object, got ${describe(json)}`, source);
  }
  const obj = json as Record<string, unknown>;
  const fail = (field: string, msg: string): never => {
    throw new T5ConfigError(`${source}: field "${field}" ${msg}`, source, field);
  };
  const raw = (field: string): unknown => {
    if (obj[field] !== undefined) return obj[field];
    const alias = ATTRIBUTE_ALIASES[field];
    return alias === undefined ? undefined : obj[alias];
  };
  const int = (field: string, dflt: number | undefined, min: number): number => {
    const v = raw(field);
    if (v === undefined) {
      if (dflt === undefined) fail(field, 'is missing');
      return dflt as number;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v))
      fail(field, `must be an integer, got ${describe(v)}`);
    if ((v as number) < min) fail(field, `must be >= ${min}, got ${v}`);
    return v as number;
  };

  const modelTypeRaw = obj.model_type ?? 't5';
  if (typeof modelTypeRaw !== 'string') fail('model_type', `must be a string, got ${describe(modelTypeRaw)}`);
  const modelType = modelTypeRaw as string;
  if (!SUPPORTED_MODEL_TYPES.has(modelType)) {
    fail(
      'model_type',
      `is "${modelType}"; only ${[...SUPPORTED_MODEL_TYPES].join(', ')} checkpoints are supported`,
    );
  }

  const vocabSize = int('vocab_size', 32128, 1);
  const dModel = int('d_model', 512, 1);
  const dKv = int('d_kv', 64, 1);
  const dFf = int('d_ff', 2048, 1);
  const numLayers = int('num_layers', 6, 1);
  const numDecoderLayers = int('num_decoder_layers', numLayers, 1);
  const numHeads = int('num_heads', 8, 1);
  // T5's bucketing halves the buckets (bidirectional) and halves again for the exact range; below 4 the
  // log-spaced range is empty and the formula divides by zero.
  const relativeAttentionNumBuckets = int('relative_attention_num_buckets', 32, 4);
  const relativeAttentionMaxDistance = int('relative_attention_max_distance', 128, 1);
  if (relativeAttentionMaxDistance <= Math.floor(relativeAttentionNumBuckets / 2)) {
    fail(
      'relative_attention_max_distance',
      `(${relativeAttentionMaxDistance}) must exceed half of relative_attention_num_buckets ` +
        `(${relativeAttentionNumBuckets}) or the log-spaced buckets are empty`,
    );
  }

  const epsRaw = obj.layer_norm_epsilon ?? 1e-6;
  if (typeof epsRaw !== 'number' || !Number.isFinite(epsRaw) || epsRaw <= 0) {
    fail('layer_norm_epsilon', `must be a positive number, got ${describe(epsRaw)}`);
  }
  const layerNormEpsilon = epsRaw as number;

  const dropoutRaw = obj.dropout_rate ?? 0.1;
  if (typeof dropoutRaw !== 'number' || !Number.isFinite(dropoutRaw) || dropoutRaw < 0 || dropoutRaw >= 1) {
    fail('dropout_rate', `must be a number in [0, 1), got ${describe(dropoutRaw)}`);
  }
  const dropoutRate = dropoutRaw as number;

  const ffRaw = obj.feed_forward_proj ?? 'relu';
  if (ffRaw !== 'relu' && ffRaw !== 'gated-gelu') {
    fail(
      'feed_forward_proj',
      `is ${describe(ffRaw)}; promptmesh runs "relu" (T5 v1.0) and "gated-gelu" (T5 v1.1, flan-t5) only`,
    );
  }
  const feedForwardProj = ffRaw as 'relu' | 'gated-gelu';
  // transformers lets explicit dense_act_fn / is_gated_act override what feed_forward_proj implies; we only
  // implement the two standard pairings, so a disagreeing override must not be silently ignored.
  const implied = impliedActivation(feedForwardProj);
  if (obj.dense_act_fn !== undefined && obj.dense_act_fn !== implied.denseActFn) {
    fail(
      'dense_act_fn',
      `is ${describe(obj.dense_act_fn)} but feed_forward_proj "${feedForwardProj}" means "${implied.denseActFn}"; ` +
        'other activations are not supported',
    );
  }
  if (obj.is_gated_act !== undefined && obj.is_gated_act !== implied.isGatedAct) {
    fail(
      'is_gated_act',
      `is ${describe(obj.is_gated_act)} but feed_forward_proj "${feedForwardProj}" means ${implied.isGatedAct}`,
    );
  }

  const tieRaw = obj.tie_word_embeddings ?? true;
  if (typeof tieRaw !== 'boolean')
    fail('tie_word_embeddings', `must be true or false, got ${describe(tieRaw)}`);
  const tieWordEmbeddings = tieRaw as boolean;

  const tokenId = (field: string, dflt: number): number => {
    const id = int(field, dflt, 0);
    if (id >= vocabSize) fail(field, `(${id}) must be below vocab_size (${vocabSize})`);
    return id;
  };
  const padTokenId = tokenId('pad_token_id', 0);
  const eosTokenId = tokenId('eos_token_id', 1);
  const decoderStartTokenId = tokenId('decoder_start_token_id', padTokenId);

  return {
    vocabSize,
    dModel,
    dKv,
    dFf,
    numLayers,
    numDecoderLayers,
    numHeads,
    relativeAttentionNumBuckets,
    relativeAttentionMaxDistance,
    layerNormEpsilon,
    dropoutRate,
    feedForwardProj,
    tieWordEmbeddings,
    padTokenId,
    eosTokenId,
    decoderStartTokenId,
    modelType,
  };
}

function impliedActivation(ff: T5Config['feedForwardProj']): { denseActFn: string; isGatedAct: boolean } {
  // transformers maps the legacy name 'gated-gelu' to gelu_new (tanh approximation) for backward compatibility.
  return ff === 'gated-gelu'
    ? { denseActFn: 'gelu_new', isGatedAct: true }
    : { denseActFn: 'relu', isGatedAct: false };
}

/** A config.json object as transformers' `save_pretrained` writes it (keys sorted, like its `sort_keys=True`). */
export function t5ConfigToJson(cfg: T5Config): Record<string, unknown> {
  const act = impliedActivation(cfg.feedForwardProj);
  const out: Record<string, unknown> = {
    architectures: ['T5ForConditionalGeneration'],
    d_ff: cfg.dFf,
    d_kv: cfg.dKv,
    d_model: cfg.dModel,
    decoder_start_token_id: cfg.decoderStartTokenId,
    dense_act_fn: act.denseActFn,
    dropout_rate: cfg.dropoutRate,
    eos_token_id: cfg.eosTokenId,
    feed_forward_proj: cfg.feedForwardProj,
    initializer_factor: 1.0,
    is_encoder_decoder: true,
    is_gated_act: act.isGatedAct,
    layer_norm_epsilon: cfg.layerNormEpsilon,
    model_type: cfg.modelType,
    num_decoder_layers: cfg.numDecoderLayers,
    num_heads: cfg.numHeads,
    num_layers: cfg.numLayers,
    pad_token_id: cfg.padTokenId,
    relative_attention_max_distance: cfg.relativeAttentionMaxDistance,
    relative_attention_num_buckets: cfg.relativeAttentionNumBuckets,
    tie_word_embeddings: cfg.tieWordEmbeddings,
    torch_dtype: 'float32',
    use_cache: true,
    vocab_size: cfg.vocabSize,
  };
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** config.json fields transformers declares as float: it refuses an integer there (`initializer_factor: 1`). */
const FLOAT_FIELDS = ['dropout_rate', 'initializer_factor', 'layer_norm_epsilon'] as const;

/**
 * The text of config.json as Python's json writes it: float fields keep a decimal point (JavaScript prints the
 * number 1.0 as `1`, which current transformers rejects for `initializer_factor`).
 */
export function t5ConfigJsonText(cfg: T5Config): string {
  const json = t5ConfigToJson(cfg);
  let text = JSON.stringify(json, null, 2);
  for (const key of FLOAT_FIELDS) {
    const v = json[key];
    if (typeof v === 'number' && Number.isInteger(v))
      text = text
        .replace(`"${key}": ${v},`, `"${key}": ${v}.0,`)
        .replace(`"${key}": ${v}\n`, `"${key}": ${v}.0\n`);
  }
  return `${text}\n`;
}

/**
 * Every tensor of a T5ForConditionalGeneration checkpoint, HF names and HF shapes (nn.Linear weights are
 * [out, in]), in the module registration order transformers saves them in. Only block 0 of each stack owns a
 * relative_attention_bias; the other blocks reuse it.
 */
export function expectedT5TensorShapes(cfg: T5Config): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const d = cfg.dModel;
  const inner = cfg.numHeads * cfg.dKv;
  const gated = cfg.feedForwardProj === 'gated-gelu';
  m.set('shared.weight', [cfg.vocabSize, d]);
  const attention = (prefix: string, relativeBias: boolean) => {
    m.set(`${prefix}.q.weight`, [inner, d]);
    m.set(`${prefix}.k.weight`, [inner, d]);
    m.set(`${prefix}.v.weight`, [inner, d]);
    m.set(`${prefix}.o.weight`, [d, inner]);
    if (relativeBias)
      m.set(`${prefix}.relative_attention_bias.weight`, [cfg.relativeAttentionNumBuckets, cfg.numHeads]);
  };
  const ff = (prefix: string) => {
    if (gated) {
      m.set(`${prefix}.DenseReluDense.wi_0.weight`, [cfg.dFf, d]);
      m.set(`${prefix}.DenseReluDense.wi_1.weight`, [cfg.dFf, d]);
    } else {
      m.set(`${prefix}.DenseReluDense.wi.weight`, [cfg.dFf, d]);
    }
    m.set(`${prefix}.DenseReluDense.wo.weight`, [d, cfg.dFf]);
    m.set(`${prefix}.layer_norm.weight`, [d]);
  };
  for (let i = 0; i < cfg.numLayers; i++) {
    const b = `encoder.block.${i}`;
    attention(`${b}.layer.0.SelfAttention`, i === 0);
    m.set(`${b}.layer.0.layer_norm.weight`, [d]);
    ff(`${b}.layer.1`);
  }
  m.set('encoder.final_layer_norm.weight', [d]);
  for (let i = 0; i < cfg.numDecoderLayers; i++) {
    const b = `decoder.block.${i}`;
    attention(`${b}.layer.0.SelfAttention`, i === 0);
    m.set(`${b}.layer.0.layer_norm.weight`, [d]);
    attention(`${b}.layer.1.EncDecAttention`, false);
    m.set(`${b}.layer.1.layer_norm.weight`, [d]);
    ff(`${b}.layer.2`);
  }
  m.set('decoder.final_layer_norm.weight', [d]);
  if (!cfg.tieWordEmbeddings) m.set('lm_head.weight', [cfg.vocabSize, d]);
  return m;
}

/**
 * Names a checkpoint may carry that duplicate an expected tensor (transformers ties them and ignores the stored
 * copy). lm_head.weight is only an alias when the embeddings are tied.
 */
export function t5TensorAliases(cfg: T5Config): Map<string, string> {
  const m = new Map<string, string>([
    ['encoder.embed_tokens.weight', 'shared.weight'],
    ['decoder.embed_tokens.weight', 'shared.weight'],
  ]);
  if (cfg.tieWordEmbeddings) m.set('lm_head.weight', 'shared.weight');
  return m;
}
