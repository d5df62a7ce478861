/**
 * Tiny randomly initialised T5 checkpoints for tests and demos. Values follow transformers'
 * T5PreTrainedModel._init_weights (initializer_factor 1) so activations have realistic scales, and each tensor
 * is drawn from its own stream seeded by (seed, tensor name): the same seed gives the same bytes on every run,
 * and changing one dimension does not reshuffle unrelated tensors.
 */
import { expectedT5TensorShapes, parseT5Config, type T5Config, t5ConfigToJson } from '../t5-config.js';
import type { Float32Tensor } from './hf-checkpoint.js';

export interface TinyT5Options {
  /** 'v1': relu feed-forward, lm_head tied to shared. 'v1.1': gated-gelu, separate lm_head (flan-t5 layout). */
  variant: 'v1' | 'v1.1';
  seed?: number;
  /** Defaults to 128; pass the tokenizer's vocabulary size to pair the model with a real tokenizer. */
  vocabSize?: number;
  dModel?: number;
  dKv?: number;
  numHeads?: number;
  dFf?: number;
  numLayers?: number;
  numDecoderLayers?: number;
  relativeAttentionNumBuckets?: number;
  relativeAttentionMaxDistance?: number;
  /** `dropout_rate` written to config.json; default 0.1, transformers' default and every released T5's. */
  dropoutRate?: number;
}

export function tinyT5Config(opts: TinyT5Options): T5Config {
  if (opts.variant !== 'v1' && opts.variant !== 'v1.1') {
    throw new RangeError(`variant must be "v1" or "v1.1", got ${JSON.stringify(opts.variant)}`);
  }
  const numLayers = opts.numLayers ?? 2;
  const config: T5Config = {
    vocabSize: opts.vocabSize ?? 128,
    dModel: opts.dModel ?? 16,
    dKv: opts.dKv ?? 4,
    dFf: opts.dFf ?? 32,
    numLayers,
    numDecoderLayers: opts.numDecoderLayers ?? numLayers,
    numHeads: opts.numHeads ?? 2,
    relativeAttentionNumBuckets: opts.relativeAttentionNumBuckets ?? 8,
    relativeAttentionMaxDistance: opts.relativeAttentionMaxDistance ?? 16,
    layerNormEpsilon: 1e-6,
    dropoutRate: opts.dropoutRate ?? 0.1,
    feedForwardProj: opts.variant === 'v1' ? 'relu' : 'gated-gelu',
    tieWordEmbeddings: opts.variant === 'v1',
    padTokenId: 0,
    eosTokenId: 1,
    decoderStartTokenId: 0,
    modelType: 't5',
  };
  // Same validation as a loaded config.json, so a bad option fails here and not deep inside the model.
  parseT5Config(t5ConfigToJson(config), 'makeTinyT5 options');
  return config;
}

/** FNV-1a over UTF-16 code units, mixed with the seed: a stable 32-bit stream id per tensor. */
function streamSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: small, fast, and identical on every platform (integer arithmetic only). */
function mulberry32(a: number): () => number {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fillNormal(out: Float32Array, std: number, rand: () => number): void {
  for (let i = 0; i < out.length; i += 2) {
    // Box-Muller; 1 - u keeps the log argument in (0, 1].
    const r = Math.sqrt(-2 * Math.log(1 - rand()));
    const theta = 2 * Math.PI * rand();
    out[i] = std * r * Math.cos(theta);
    if (i + 1 < out.length) out[i + 1] = std * r * Math.sin(theta);
  }
}

function initStd(name: string, cfg: T5Config): number | 'ones' {
  const inner = cfg.numHeads * cfg.dKv;
  if (name.endsWith('layer_norm.weight')) return 'ones';
  if (name === 'shared.weight' || name === 'lm_head.weight') return 1;
  if (name.endsWith('.q.weight')) return (cfg.dModel * cfg.dKv) ** -0.5;
  if (name.endsWith('.k.weight') || name.endsWith('.v.weight')) return cfg.dModel ** -0.5;
  if (name.endsWith('.o.weight')) return inner ** -0.5;
  if (name.endsWith('relative_attention_bias.weight')) return cfg.dModel ** -0.5;
  if (name.endsWith('.wo.weight')) return cfg.dFf ** -0.5;
  if (/\.wi(_[01])?\.weight$/.test(name)) return cfg.dModel ** -0.5;
  throw new Error(`internal: no init rule for ${name}`);
}

/** A complete, deterministic T5 checkpoint (config + every expected tensor) ready for writeT5Checkpoint. */
export function makeTinyT5(opts: TinyT5Options): { config: T5Config; tensors: Map<string, Float32Tensor> } {
  const config = tinyT5Config(opts);
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  const tensors = new Map<string, Float32Tensor>();
  for (const [name, shape] of expectedT5TensorShapes(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const std = initStd(name, config);
    if (std === 'ones') data.fill(1);
    else fillNormal(data, std, mulberry32(streamSeed(seed, name)));
    tensors.set(name, { shape, data });
  }
  return { config, tensors };
}
