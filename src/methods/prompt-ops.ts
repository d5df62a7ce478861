import * as tf from '@tensorflow/tfjs-core';
import { permutation, rngFor } from '../data/rng.js';
import type { T5Model } from '../model/t5/index.js';
import type { EncoderInputs, PromptBatch } from './method.js';

/** How many of the lowest (most frequent, in a SentencePiece vocabulary) ids prompt initialisation draws from. */
export const FREQUENT_IDS = 5000;
/** pad, </s>, <unk> in T5's vocabulary: never used to initialise a prompt. */
const SPECIAL_IDS = 3;

/**
 * Lester et al.'s initialisation: rows of the frozen embedding for `n` distinct token ids drawn from the 5000 most
 * frequent ids (SentencePiece orders ids by frequency). A vocabulary with fewer candidates than `n` (tiny test
 * models) reuses ids, since distinctness is then impossible.
 */
export function vocabInit(model: T5Model, n: number, seed: number, label: string): Float32Array {
  const V = model.config.vocabSize;
  const pool = Math.max(1, Math.min(FREQUENT_IDS, V - SPECIAL_IDS));
  const perm = permutation(rngFor(seed, 'vocab-init', label), pool);
  const ids = Int32Array.from({ length: n }, (_, i) => SPECIAL_IDS + perm[i % pool]!);
  return tf.tidy(() => tf.gather(model.shared, tf.tensor1d(ids, 'int32')).dataSync() as Float32Array);
}

/** uniform(-range, range) initialisation, deterministic in (seed, label). */
export function uniformInit(size: number, range: number, seed: number, label: string): Float32Array {
  const rng = rngFor(seed, 'uniform-init', label);
  return Float32Array.from({ length: size }, () => (rng() * 2 - 1) * range);
}

/**
 * N(0, std^2) initialisation (Box-Muller over the seeded stream), deterministic in (seed, label): what
 * torch's `weight.data.normal_(mean=0.0, std=std)` draws, up to the random stream.
 */
export function normalInit(size: number, std: number, seed: number, label: string): Float32Array {
  const rng = rngFor(seed, 'normal-init', label);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i += 2) {
    // 1 - rng() is in (0, 1], so the log is finite.
    const r = Math.sqrt(-2 * Math.log(1 - rng()));
    const theta = 2 * Math.PI * rng();
    out[i] = std * r * Math.cos(theta);
    if (i + 1 < size) out[i + 1] = std * r * Math.sin(theta);
  }
  return out;
}

/** Token embeddings of the batch: [B, L, d]. */
export function tokenEmbeddings(model: T5Model, batch: PromptBatch): tf.Tensor3D {
  return model.embed(batch.inputIds);
}

/** [B, P, d] prompt rows followed by [B, L, d] embeddings; the mask gains P ones in front. */
export function prependPrompt(prompt: tf.Tensor3D, embeds: tf.Tensor3D, mask: tf.Tensor2D): EncoderInputs {
  const [B, P] = prompt.shape;
  return {
    inputsEmbeds: tf.concat([prompt, embeds], 1) as tf.Tensor3D,
    attentionMask: tf.concat([tf.ones([B, P]), tf.cast(mask, 'float32')], 1) as tf.Tensor2D,
    promptRows: P,
  };
}

/** Index of each example's task in `tasks`; throws naming an unknown task. */
export function taskIndices(
  tasks: readonly string[],
  batchTasks: readonly string[],
  method: string,
): Int32Array {
  return Int32Array.from(batchTasks, (t) => {
    const i = tasks.indexOf(t);
    if (i < 0)
      throw new Error(
        `${method}: batch has task '${t}', which this method was not created for (${tasks.join(', ')})`,
      );
    return i;
  });
}

/** Max over the real (mask = 1) positions of x [B, L, d] -> [B, d]; pads never win. */
export function maskedMaxPool(x: tf.Tensor3D, mask: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const neg = tf.mul(tf.sub(1, tf.expandDims(tf.cast(mask, 'float32'), -1)), -1e9);
    return tf.max(tf.add(x, neg), 1) as tf.Tensor2D;
  });
}

/** The pad token's embedding row, [d]: what a position padded with `padTokenId` feeds the encoder. */
export function padEmbedding(model: T5Model): tf.Tensor1D {
  return tf.tidy(() =>
    tf.reshape(model.embed(tf.tensor2d([[model.config.padTokenId]], [1, 1], 'int32')), [-1]),
  ) as tf.Tensor1D;
}

/**
 * Max over positions of each example as if it were padded to `length` positions with the pad token (what the
 * released codes pool, having padded every input to max_source_length): the max over its real (mask = 1) tokens,
 * then with the pad embedding `pad` [d] when it has fewer than `length` of them. Max is exact, so the result is
 * bit-for-bit the same whatever the batch is padded to: it depends on the example alone.
 */
export function fixedLengthMaxPool(
  x: tf.Tensor3D,
  mask: tf.Tensor2D,
  pad: tf.Tensor1D,
  length: number,
): tf.Tensor2D {
  return tf.tidy(() => {
    const real = maskedMaxPool(x, mask);
    const padded = tf.less(tf.sum(tf.cast(mask, 'float32'), 1, true), length); // [B, 1]
    return tf.where(tf.broadcastTo(padded, real.shape), tf.maximum(real, pad), real);
  });
}

/** Mean over the real positions of x [B, L, d] -> [B, d]. */
export function maskedMeanPool(x: tf.Tensor3D, mask: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const m = tf.expandDims(tf.cast(mask, 'float32'), -1);
    return tf.div(tf.sum(tf.mul(x, m), 1), tf.maximum(tf.sum(m, 1), 1)) as tf.Tensor2D;
  });
}

/** tf.tidy for a function returning encoder inputs: everything else it allocated is freed. */
export function tidyInputs(fn: () => EncoderInputs): EncoderInputs {
  let promptRows: number | undefined;
  const [inputsEmbeds, attentionMask] = tf.tidy(() => {
    const x = fn();
    promptRows = x.promptRows;
    return [x.inputsEmbeds, x.attentionMask];
  });
  return {
    inputsEmbeds: inputsEmbeds as tf.Tensor3D,
    attentionMask: attentionMask as tf.Tensor2D,
    ...(promptRows !== undefined ? { promptRows } : {}),
  };
}
