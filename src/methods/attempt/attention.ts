import * as tf from '@tensorflow/tfjs-core';
import { fixedLengthMaxPool, maskedMaxPool } from '../prompt-ops.js';
import type { AttentionVariant } from './config.js';

/** PyTorch's nn.LayerNorm default, which the released code uses for the query norm. */
export const LAYER_NORM_EPS = 1e-5;

/** The attention module's tensors (absent for 'dot' and 'constant'). */
export interface AttentionModule {
  /** [d, r] */
  down: tf.Tensor2D;
  /** [r, d] */
  up: tf.Tensor2D;
  /** [d] */
  gamma: tf.Tensor1D;
  /** [d] */
  beta: tf.Tensor1D;
}

/**
 * How x_hat pools the input: over the real tokens only, or (the released code) over the input padded to a fixed
 * length, so that the pad embedding takes part in the max whenever the example is shorter than that length.
 */
export type InputPooling = { padTo?: undefined } | { padTo: number; pad: tf.Tensor1D };

/**
 * x_hat: max over positions of the input embeddings [B, L, d] -> [B, d]. With `padTo` the example is pooled as if
 * padded to that many positions with the pad token (the released code pads every input to max_source_length), not
 * to the batch's length, so x_hat depends on the example alone whatever it is batched with.
 */
export function poolInput(embeds: tf.Tensor3D, mask: tf.Tensor2D, pooling: InputPooling): tf.Tensor2D {
  return pooling.padTo === undefined
    ? maskedMaxPool(embeds, mask)
    : fixedLengthMaxPool(embeds, mask, pooling.pad, pooling.padTo);
}

/** LayerNorm over the last axis (biased variance, as torch). */
export function layerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => {
    const mean = tf.mean(x, -1, true);
    const centred = tf.sub(x, mean);
    const variance = tf.mean(tf.square(centred), -1, true);
    return tf.add(
      tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, LAYER_NORM_EPS))), gamma),
      beta,
    ) as tf.Tensor2D;
  });
}

/** q [B, d] for the variants that have one (see AttentionVariant). */
export function attentionQuery(
  variant: Exclude<AttentionVariant, 'constant'>,
  xHat: tf.Tensor2D,
  module: AttentionModule | undefined,
): tf.Tensor2D {
  if (variant === 'dot') return xHat;
  if (!module) throw new Error(`internal: attn '${variant}' needs the attention module`);
  return tf.tidy(() => {
    let h = tf.matMul(xHat, module.down);
    if (variant === 'sub') h = tf.mul(h, tf.sigmoid(h)); // SiLU
    return layerNorm(tf.matMul(h, module.up), module.gamma, module.beta);
  });
}

/**
 * Attention logits over the candidates, sources first then (optionally) the target: k_j . q / T -> [B, J].
 * `sourceKeys` [t, d] are shared by the batch; `targetKeys` [B, d] are per example (each example's task prompt).
 */
export function candidateLogits(
  q: tf.Tensor2D,
  sourceKeys: tf.Tensor2D,
  targetKeys: tf.Tensor2D | undefined,
  temperature: number,
): tf.Tensor2D {
  return tf.tidy(() => {
    let s = tf.matMul(q, sourceKeys, false, true); // [B, t]
    if (targetKeys) s = tf.concat([s, tf.sum(tf.mul(q, targetKeys), -1, true)], 1);
    return tf.div(s, temperature) as tf.Tensor2D;
  });
}

/**
 * P_ins = sum_j a_j C_j + P_tgt -> [B, n, d]. `weights` [B, J] are over the sources then, when
 * `weights.shape[1]` is t + 1, the target; `sources` [t, n, d]; `target` [B, n, d].
 */
export function mixPrompts(weights: tf.Tensor2D, sources: tf.Tensor3D, target: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const [t, n, d] = sources.shape;
    const B = weights.shape[0];
    const J = weights.shape[1];
    const wSrc = J === t ? weights : tf.slice(weights, [0, 0], [B, t]);
    let out = tf.add(
      tf.reshape(tf.matMul(wSrc, tf.reshape(sources, [t, n * d])), [B, n, d]),
      target,
    ) as tf.Tensor3D;
    if (J === t + 1) {
      const wTgt = tf.reshape(tf.slice(weights, [0, t], [B, 1]), [B, 1, 1]);
      out = tf.add(out, tf.mul(wTgt, target));
    }
    return out;
  });
}
