/**
 * Pretraining a small T5 from scratch with span corruption, optionally mixed with supervised examples (T5 itself
 * was trained on such a multi-task mixture, Raffel et al. 2020 section 3.5.2). Only used to build the demo backbone:
 * prompt training never updates backbone weights.
 *
 * Every update is a pure function of (seed, step): the examples of batch `step` are drawn from rngFor(seed, step),
 * so a run is reproducible on any machine with the same backend arithmetic.
 */
import * as tf from '@tensorflow/tfjs-core';

import { randInt, rngFor } from '../../data/rng.js';
import { type Float32Tensor, makeTinyT5 } from '../../model/checkpoint/index.js';
import { T5Model } from '../../model/t5/index.js';
import type { T5Config } from '../../model/t5-config.js';
import type { Tokenizer } from '../../model/tokenizer/index.js';
import { AdamW } from '../adamw.js';
import { makeBatch } from '../batching.js';
import { clipGlobalNorm } from '../clip.js';
import { formatDuration, formatProgressLine, type ProgressSink, silentProgress } from '../progress.js';
import { linearWarmupDecay } from '../schedule.js';
import { type SpanCorruptionOptions, spanCorrupt, T5_SPAN_CORRUPTION } from './span-corruption.js';

/** Architecture of a backbone trained from scratch. */
export interface BackboneShape {
  /** 'v1': relu feed-forward, tied embeddings; 'v1.1': gated-gelu, separate lm_head. */
  variant: 'v1' | 'v1.1';
  dModel: number;
  dKv: number;
  numHeads: number;
  dFf: number;
  numLayers: number;
  numDecoderLayers: number;
  relativeAttentionNumBuckets: number;
  relativeAttentionMaxDistance: number;
}

export interface PretrainOptions {
  /** Architecture of a fresh model; ignored when `init` is given. */
  shape: BackboneShape;
  /**
   * Continue from these weights instead of a fresh initialisation (e.g. a previous run's folder, to pretrain
   * longer). Its vocabulary must be the tokenizer's. The optimizer state starts fresh, with its own warm-up.
   */
  init?: { config: T5Config; tensors: Map<string, Float32Tensor> };
  steps: number;
  batchSize: number;
  /** Peak learning rate of AdamW (linear warm-up, then linear decay to 0). */
  lr: number;
  warmupSteps: number;
  weightDecay: number;
  /** Global gradient-norm clip (0: off). */
  clipNorm: number;
  seed: number;
  /** Length in tokens of a packed text chunk before corruption. */
  chunkTokens: number;
  /** Longest supervised source kept (longer ones are truncated, keeping </s>). */
  maxSourceTokens: number;
  /** Probability that an example of a batch is a supervised one rather than span corruption. */
  supervisedFraction: number;
  /**
   * Probability that an example is prefix language modelling on one passage (input: its first tokens; target: the
   * rest). Lester et al. (2021) found prompt tuning works far better on T5 "LM-adapted" with this objective than on
   * span-corruption-only T5, whose decoder always starts with a sentinel; with it, the first decoded token can be a
   * word that continues the input ("... overall it was" -> "good"), which is what a prompt must steer. Default 0.
   */
  prefixLmFraction?: number;
  /**
   * How token losses are averaged: 'token' (T5's mean over every target token of the batch) or 'example' (the mean
   * over examples of each example's mean token loss). With 'token', a one-word supervised label weighs about as much
   * as one of the ~15 target tokens of a span-corruption example, so a share of supervised examples barely moves
   * the model: measured on the demo, 1,400 updates with 40% supervised examples left the backbone at chance on the
   * supervised sentiment task it trained on. 'example' gives each example the same weight. Default 'token'.
   */
  lossWeighting?: 'token' | 'example';
  noise?: SpanCorruptionOptions;
  progress?: ProgressSink;
  /** Called after every update (tests, curves). */
  onStep?: (report: PretrainStepReport) => void;
  /** Measures the model (e.g. source-task accuracy) every `probeEvery` updates and after the last one. */
  probe?: (model: T5Model) => Record<string, number>;
  /** Updates between probes (0 or absent: only after the last update, if a probe is given). */
  probeEvery?: number;
  /** Called with each probe's result. */
  onProbe?: (report: PretrainProbeReport) => void;
}

export interface PretrainProbeReport {
  /** Updates done when the probe ran. */
  step: number;
  scores: Record<string, number>;
}

export interface PretrainStepReport {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
}

export interface PretrainResult {
  model: T5Model;
  config: T5Config;
  /** Mean token loss of every update. */
  losses: number[];
  /** Probe results in order (empty without a probe). */
  probes: PretrainProbeReport[];
  /** Seconds of training, probes excluded. */
  seconds: number;
}

export interface SupervisedPair {
  source: string;
  target: string;
  /** Relative sampling weight (default 1): a pair of weight 2 is drawn twice as often as one of weight 1. */
  weight?: number;
}

/** Draws an index of `pairs` with probability proportional to its weight; uniform (randInt) when none is set. */
export function weightedPicker(pairs: readonly SupervisedPair[]): (rng: () => number) => number {
  if (pairs.every((p) => p.weight === undefined)) return (rng) => randInt(rng, pairs.length);
  const cumulative: number[] = [];
  let total = 0;
  for (const p of pairs) {
    const w = p.weight ?? 1;
    if (!(w >= 0 && Number.isFinite(w))) throw new RangeError(`pretrain: pair weight must be >= 0, got ${w}`);
    total += w;
    cumulative.push(total);
  }
  if (!(total > 0)) throw new RangeError('pretrain: supervised pair weights sum to 0');
  return (rng) => {
    const x = rng() * total;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
}

/** Concatenates tokenized passages and cuts the stream into chunks of `chunkTokens` (the last partial one kept). */
export function packTokens(passages: readonly (readonly number[])[], chunkTokens: number): number[][] {
  const chunks: number[][] = [];
  let cur: number[] = [];
  for (const p of passages) {
    for (const id of p) {
      cur.push(id);
      if (cur.length === chunkTokens) {
        chunks.push(cur);
        cur = [];
      }
    }
  }
  if (cur.length >= 2) chunks.push(cur);
  return chunks;
}

export interface PretrainExample {
  input: number[];
  target: number[];
}

function validate(o: PretrainOptions): void {
  const positive: [string, number][] = [
    ['steps', o.steps],
    ['batchSize', o.batchSize],
    ['chunkTokens', o.chunkTokens],
    ['maxSourceTokens', o.maxSourceTokens],
  ];
  for (const [k, v] of positive) {
    if (!Number.isInteger(v) || v < 1)
      throw new RangeError(`pretrain: ${k} must be a positive integer, got ${v}`);
  }
  if (!(o.lr > 0)) throw new RangeError(`pretrain: lr must be > 0, got ${o.lr}`);
  if (!(o.supervisedFraction >= 0 && o.supervisedFraction <= 1)) {
    throw new RangeError(`pretrain: supervisedFraction must be in [0, 1], got ${o.supervisedFraction}`);
  }
  const lm = o.prefixLmFraction ?? 0;
  if (!(lm >= 0 && o.supervisedFraction + lm <= 1)) {
    throw new RangeError(
      `pretrain: prefixLmFraction must be >= 0 with supervisedFraction + prefixLmFraction <= 1, got ${lm} + ${o.supervisedFraction}`,
    );
  }
}

/**
 * Trains a fresh backbone of `options.shape` (vocabulary = the tokenizer's) on span corruption of `texts` mixed
 * with `supervised` pairs. Returns the trained model (trainable mode; the caller exports and disposes it).
 */
export function pretrainBackbone(
  tokenizer: Tokenizer,
  texts: readonly string[],
  supervised: readonly SupervisedPair[],
  options: PretrainOptions,
): PretrainResult {
  validate(options);
  const progress = options.progress ?? silentProgress;
  const noise = options.noise ?? T5_SPAN_CORRUPTION;
  const passages = texts.map((t) => tokenizer.encode(t, { addEos: false }));
  const chunks = packTokens(passages, options.chunkTokens);
  const lmPassages = passages.filter((p) => p.length >= 2);
  const prefixLm = lmPassages.length > 0 ? (options.prefixLmFraction ?? 0) : 0;
  if (chunks.length === 0) throw new RangeError('pretrain: the text gave no token chunks (is it empty?)');
  const sentinel = (i: number) => tokenizer.extraId(i);
  const eos = tokenizer.eosId;
  const supervisedCache = new Map<number, PretrainExample>();
  const supervisedExample = (i: number): PretrainExample => {
    let hit = supervisedCache.get(i);
    if (!hit) {
      const pair = supervised[i]!;
      let input = tokenizer.encode(pair.source);
      if (input.length > options.maxSourceTokens)
        input = [...input.slice(0, options.maxSourceTokens - 1), eos];
      hit = { input, target: tokenizer.encode(pair.target) };
      supervisedCache.set(i, hit);
    }
    return hit;
  };
  const pickSupervised = weightedPicker(supervised);
  const batchExamples = (step: number): PretrainExample[] => {
    const rng = rngFor(options.seed, 'pretrain-batch', step);
    const out: PretrainExample[] = [];
    for (let b = 0; b < options.batchSize; b++) {
      // One draw decides the kind, so a run without prefix LM consumes the stream exactly as before it existed.
      const kind = supervised.length > 0 || prefixLm > 0 ? rng() : 1;
      if (supervised.length > 0 && kind < options.supervisedFraction) {
        out.push(supervisedExample(pickSupervised(rng)));
      } else if (kind < options.supervisedFraction + prefixLm) {
        out.push(prefixLmExample(lmPassages[randInt(rng, lmPassages.length)]!, rng, eos));
      } else {
        out.push(spanCorrupt(chunks[randInt(rng, chunks.length)]!, rng, sentinel, eos, noise));
      }
    }
    return out;
  };

  const { config, tensors } = options.init ?? freshWeights(options.shape, tokenizer.vocabSize, options.seed);
  if (config.vocabSize !== tokenizer.vocabSize) {
    throw new RangeError(
      `pretrain: the initial weights have a vocabulary of ${config.vocabSize} ids but the tokenizer has ${tokenizer.vocabSize}; use the tokenizer the weights were trained with`,
    );
  }
  const model = T5Model.fromWeights(config, tensors, { trainable: true });
  const vars = [...model.trainableVariables()];
  const values = new Map(vars.map(([name, v]) => [name, Float32Array.from(v.dataSync() as Float32Array)]));
  const adamw = new AdamW({ weightDecay: options.weightDecay });
  const losses: number[] = [];
  const probes: PretrainProbeReport[] = [];
  let probeSeconds = 0;
  const runProbe = (step: number) => {
    if (!options.probe) return;
    const p0 = performance.now();
    const report = { step, scores: options.probe(model) };
    probeSeconds += (performance.now() - p0) / 1000;
    probes.push(report);
    options.onProbe?.(report);
  };
  const t0 = performance.now();
  let ema: number | undefined;
  try {
    for (let step = 0; step < options.steps; step++) {
      const examples = batchExamples(step);
      const loss = tf.tidy(() => {
        // Pretraining examples are already token ids: the trainer's makeBatch pads them (inside this tidy).
        const {
          inputIds: ids,
          attentionMask: mask,
          labels,
          labelMask,
        } = makeBatch(
          examples.map((e, i) => ({
            key: `pretrain/${step}/${i}`,
            task: 'pretrain',
            source: Int32Array.from(e.input),
            target: Int32Array.from(e.target),
          })),
          tokenizer.padId,
        );
        const perExample = options.lossWeighting === 'example';
        const tokensPerExample = perExample ? tf.maximum(tf.sum(labelMask, 1), 1) : undefined;
        const { value, grads } = tf.variableGrads(
          () => {
            const batch = { inputsEmbeds: model.embed(ids), attentionMask: mask, labels, labelMask };
            if (!tokensPerExample) return model.loss(batch);
            return tf.mean(tf.div(model.lossTerms(batch).perExample, tokensPerExample)) as tf.Scalar;
          },
          vars.map(([, v]) => v),
        );
        const gradArrays = vars.map(([, v]) => {
          const g = grads[v.name];
          if (!g) throw new Error(`internal: no gradient for ${v.name}`);
          return Float32Array.from(g.dataSync() as Float32Array);
        });
        const gradNorm = clipGlobalNorm(gradArrays, options.clipNorm);
        const lr = options.lr * linearWarmupDecay(step, options.warmupSteps, options.steps);
        vars.forEach(([name, v], i) => {
          const p = values.get(name)!;
          adamw.update(name, p, gradArrays[i]!, lr);
          v.assign(tf.tensor(p, v.shape, 'float32'));
        });
        const l = value.dataSync()[0]!;
        options.onStep?.({ step, loss: l, lr, gradNorm });
        return l;
      });
      losses.push(loss);
      const every = options.probeEvery ?? 0;
      if (every > 0 && (step + 1) % every === 0 && step + 1 < options.steps) runProbe(step + 1);
      ema = ema === undefined ? loss : 0.95 * ema + 0.05 * loss;
      const elapsed = (performance.now() - t0) / 1000 - probeSeconds;
      const perStep = elapsed / (step + 1);
      progress.update(
        formatProgressLine({
          label: 'pretrain',
          step: step + 1,
          steps: options.steps,
          loss: ema,
          examplesPerSecond: (options.batchSize * (step + 1)) / elapsed,
          etaSeconds: perStep * (options.steps - step - 1),
          extra: [`elapsed ${formatDuration(elapsed)}`],
        }),
      );
    }
  } catch (err) {
    model.dispose();
    throw err;
  }
  const seconds = (performance.now() - t0) / 1000 - probeSeconds;
  try {
    runProbe(options.steps);
  } catch (err) {
    model.dispose();
    throw err;
  }
  progress.done();
  return { model, config, losses, probes, seconds };
}

function freshWeights(shape: BackboneShape, vocabSize: number, seed: number) {
  const fresh = makeTinyT5({ ...shape, vocabSize, seed });
  // transformers initialises an untied lm_head with std 1, so a fresh v1.1 model starts with logits of std
  // sqrt(d) and a loss near 25; scaling it like the tied v1 head (d^-0.5) starts near log(vocab) and saves updates.
  const head = fresh.tensors.get('lm_head.weight');
  if (head)
    for (let i = 0; i < head.data.length; i++) head.data[i] = head.data[i]! * fresh.config.dModel ** -0.5;
  return fresh;
}

/** Splits a passage at a uniform point in [1, length - 1]: the prefix is the input, the rest the target. */
export function prefixLmExample(passage: readonly number[], rng: () => number, eos: number): PretrainExample {
  const cut = 1 + randInt(rng, passage.length - 1);
  return { input: [...passage.slice(0, cut), eos], target: [...passage.slice(cut), eos] };
}
