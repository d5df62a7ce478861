import * as tf from '@tensorflow/tfjs-core';
import { applyDropout } from './dropout.js';
import { transposedMatmulIsSlow } from './kernel-paths.js';

/** Dropout on the attention probabilities: a bool keep mask [B, H, Lq, Lk] and the rate it was drawn with. */
export interface AttentionDropout {
  keep: tf.Tensor;
  rate: number;
}

/**
 * softmax(Q K^T + bias) V for every (batch, head), without the 1/sqrt(d) scale (T5 folds it into its weights).
 * q: [B, H, Lq, dk], k and v: [B, H, Lk, dk], bias: broadcastable to [B, H, Lq, Lk] (position bias + masks; frozen,
 * so it gets no gradient). With `dropout`, the probabilities are multiplied by keep / (1 - rate) before V, as
 * Hugging Face's T5 does in training. Returns [B, H, Lq, dk].
 */
export function attentionCore(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor,
  dropout?: AttentionDropout,
): tf.Tensor4D {
  return transposedMatmulIsSlow()
    ? splitHeadAttention(q, k, v, bias, dropout)
    : batchedAttention(q, k, v, bias, dropout);
}

/** Reference formulation with batched matmuls: fast on tfjs-node(-gpu) and used by the tests as ground truth. */
export function batchedAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor,
  dropout?: AttentionDropout,
): tf.Tensor4D {
  return tf.tidy(() => {
    const scores = tf.add(tf.matMul(q, k, false, true), bias);
    const probs = tf.softmax(scores);
    return tf.matMul(dropout ? applyDropout(probs, dropout.keep, dropout.rate) : probs, v) as tf.Tensor4D;
  });
}

/**
 * Why this exists: on the wasm backend batched (rank-3/4) and transposed matmuls run at ~1 GFLOP/s while a plain
 * 2-D matmul runs at ~30. Slicing a tensor into heads with tf.slice/tf.split copies the whole input once per slice
 * (the wasm kernel reads the full buffer), which is quadratic. So this op reads each operand out of the heap once,
 * cuts it into per-head 2-D tensors in JS, runs plain 2-D matmuls, and concatenates. Transposes are done once on the
 * whole 4-D tensor (cheap). Its gradient is written the same way: dP = dO V^T, dS = P * (dP - rowsum(dP * P)),
 * dQ = dS K, dK = dS^T Q, dV = P^T dO, and dBias = dS summed over the axes the bias was broadcast along (the
 * frozen model discards it; a backbone being pretrained learns its relative position table through it).
 * With dropout, D = P * keep / (1 - rate) replaces P in O = D V: dV = D^T dO, and dP = (dO V^T) * keep / (1 - rate).
 */
export function splitHeadAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor,
  dropout?: AttentionDropout,
): tf.Tensor4D {
  const [B, H, Lq, dk] = q.shape;
  const Lk = k.shape[2];
  const n = B * H;
  const scaledKeep = (keep: tf.Tensor) => tf.mul(tf.cast(keep, 'float32'), 1 / (1 - dropout!.rate));
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [qIn, kIn, vIn, bIn, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const probs = tf.tidy(() => {
      const kT = tf.transpose(kIn, [0, 1, 3, 2]);
      const s = headwiseMatMul(qIn.dataSync() as Float32Array, kT.dataSync() as Float32Array, n, Lq, dk, Lk);
      return tf.softmax(tf.add(tf.reshape(s, [B, H, Lq, Lk]), bIn));
    });
    const mixed = dropout ? tf.tidy(() => tf.mul(probs, scaledKeep(dropout.keep))) : probs;
    const out = tf.tidy(() =>
      tf.reshape(
        headwiseMatMul(mixed.dataSync() as Float32Array, vIn.dataSync() as Float32Array, n, Lq, Lk, dk),
        [B, H, Lq, dk],
      ),
    );
    save(dropout ? [qIn, kIn, vIn, probs, dropout.keep] : [qIn, kIn, vIn, probs]);
    return {
      value: out,
      gradFunc: (dO: tf.Tensor, saved: tf.Tensor[]) => {
        const [sq, sk, sv, p, keep] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor?];
        return tf.tidy(() => {
          const dOData = dO.dataSync() as Float32Array;
          const vT = tf.transpose(sv, [0, 1, 3, 2]);
          const dMixed = tf.reshape(headwiseMatMul(dOData, vT.dataSync() as Float32Array, n, Lq, dk, Lk), [
            B,
            H,
            Lq,
            Lk,
          ]);
          const m = keep ? scaledKeep(keep) : undefined;
          const dP = m ? tf.mul(dMixed, m) : dMixed;
          const dS = tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true)));
          const dST = tf.transpose(dS, [0, 1, 3, 2]);
          const pT = tf.transpose(m ? tf.mul(p, m) : p, [0, 1, 3, 2]);
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
            reduceToShape(dS, bias.shape),
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

/**
 * For i in [0, n): C_i = A_i B_i with A_i = a[i] as [m, kk] and B_i = b[i] as [kk, p], all row-major and packed.
 * Returns the C_i stacked as [n * m, p].
 */
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
