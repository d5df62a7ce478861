import * as tf from '@tensorflow/tfjs-core';

import { batchedAttention } from './attention-core.js';

/**
 * attentionCore for a backbone being trained: the same softmax(Q K^T + bias) V, but the bias (which carries the
 * learned relative position table) receives its gradient too. The frozen path's split-head op treats the bias as a
 * constant, which is right for prompt training and wrong for pretraining.
 */
export function trainableAttentionCore(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor,
): tf.Tensor4D {
  // Off wasm, batched matmuls are fast and autodiff already differentiates the bias.
  return tf.getBackend() === 'wasm'
    ? splitHeadAttentionWithBias(q, k, v, bias)
    : batchedAttention(q, k, v, bias);
}

/**
 * The split-head formulation of attention-core.ts (per-head plain 2-D matmuls, because wasm runs batched and
 * transposed matmuls ~30x slower), with dBias = dS summed over the axes the bias was broadcast along.
 */
export function splitHeadAttentionWithBias(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor,
): tf.Tensor4D {
  const [B, H, Lq, dk] = q.shape;
  const Lk = k.shape[2];
  const n = B * H;
  const biasShape = bias.shape;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [qIn, kIn, vIn, bIn, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const probs = tf.tidy(() => {
      const kT = tf.transpose(kIn, [0, 1, 3, 2]);
      const s = headwiseMatMul(qIn.dataSync() as Float32Array, kT.dataSync() as Float32Array, n, Lq, dk, Lk);
      return tf.softmax(tf.add(tf.reshape(s, [B, H, Lq, Lk]), bIn));
    });
    const out = tf.tidy(() =>
      tf.reshape(
        headwiseMatMul(probs.dataSync() as Float32Array, vIn.dataSync() as Float32Array, n, Lq, Lk, dk),
        [B, H, Lq, dk],
      ),
    );
    save([qIn, kIn, vIn, probs]);
    return {
      value: out,
      gradFunc: (dO: tf.Tensor, saved: tf.Tensor[]) => {
        const [sq, sk, sv, p] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        return tf.tidy(() => {
          const dOData = dO.dataSync() as Float32Array;
          const vT = tf.transpose(sv, [0, 1, 3, 2]);
          const dP = tf.reshape(headwiseMatMul(dOData, vT.dataSync() as Float32Array, n, Lq, dk, Lk), [
            B,
            H,
            Lq,
            Lk,
          ]);
          const dS = tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true)));
          const dST = tf.transpose(dS, [0, 1, 3, 2]);
          const pT = tf.transpose(p, [0, 1, 3, 2]);
          const dSData = dS.dataSync() as Float32Array;
          const dQ = headwiseMatMul(dSData, sk.dataSync() as Float32Array, n, Lq, Lk, dk);
          const dK = headwiseMatMul(
            dST.dataSync() as Float32Array,
            sq.dataSync() as Float32Array,
            n,
            Lk,
            Lq,
            dk,
          );
          const dV = headwiseMatMul(pT.dataSync() as Float32Array, dOData, n, Lk, Lq, dk);
          return [
            tf.reshape(dQ, [B, H, Lq, dk]),
            tf.reshape(dK, [B, H, Lk, dk]),
            tf.reshape(dV, [B, H, Lk, dk]),
            reduceToShape(dS, biasShape),
          ];
        });
      },
    };
  });
  return op(q, k, v, bias) as tf.Tensor4D;
}

/** Sums a [B, H, Lq, Lk] gradient over the axes along which a bias of `shape` was broadcast. */
function reduceToShape(g: tf.Tensor, shape: number[]): tf.Tensor {
  const full = g.shape;
  const padded = [...new Array<number>(full.length - shape.length).fill(1), ...shape];
  const axes = full.map((_, i) => i).filter((i) => padded[i] === 1 && full[i] !== 1);
  const summed = axes.length > 0 ? tf.sum(g, axes, true) : g;
  return tf.reshape(summed, shape);
}

/** C_i = A_i B_i for i < n, A_i [m, kk] and B_i [kk, p] packed row-major; returns the C_i stacked as [n * m, p]. */
function headwiseMatMul(
  a: Float32Array,
  b: Float32Array,
  n: number,
  m: number,
  kk: number,
  p: number,
): tf.Tensor2D {
  return tf.tidy(() => {
    const parts: tf.Tensor2D[] = [];
    const aSize = m * kk;
    const bSize = kk * p;
    for (let i = 0; i < n; i++) {
      const ai = tf.tensor2d(a.subarray(i * aSize, (i + 1) * aSize), [m, kk]);
      const bi = tf.tensor2d(b.subarray(i * bSize, (i + 1) * bSize), [kk, p]);
      parts.push(tf.matMul(ai, bi));
    }
    return parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
  });
}
