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

/** Rows [B * L, H * dk] (example-major rows, head-major columns) -> heads [B, H, L, dk]. */
export function rowsToHeads(t: tf.Tensor, B: number, L: number, H: number, dk: number): tf.Tensor4D {
  return tf.transpose(tf.reshape(t, [B, L, H, dk]), [0, 2, 1, 3]) as tf.Tensor4D;
}

/** Heads [B, H, L, dk] -> rows [B * L, H * dk], the inverse of rowsToHeads. */
export function headsToRows(t: tf.Tensor, B: number, L: number, H: number, dk: number): tf.Tensor2D {
  return tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [B * L, H * dk]) as tf.Tensor2D;
}

/** The sizes of one multi-head attention: batch, heads, query and key lengths, width of a head. */
export interface HeadShape {
  B: number;
  H: number;
  Lq: number;
  Lk: number;
  dk: number;
}

/**
 * Multi-head attention from the 2-D projections: q [B * Lq, H * dk], k and v [B * Lk, H * dk] -> rows
 * [B * Lq, H * dk] for the output projection (T5's layout: example-major rows, head-major columns). `biasGrad`: the
 * bias gets a gradient (a backbone being pretrained learns its relative position table through it); otherwise it
 * is a constant of the op.
 *
 * On wasm: split-head attention between the head transposes, differentiated op by op. Elsewhere one op with the
 * gradient written out (that of splitHeadAttention, with batched matmuls), which keeps only Q, K and V split into
 * heads, the probabilities and the dropout mask for the backward pass. Differentiating the composed ops also keeps
 * each projection before its transpose (a reshape keeps its input), the scores before the bias add (an add keeps
 * both operands) and the output before its transpose: on the t5-small bench step that held about 120 MB more from
 * the forward pass to the backward (docs/backends.md). The forward values are the same ops in the same order.
 */
export function multiHeadAttention(
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  v: tf.Tensor2D,
  shape: HeadShape,
  bias: tf.Tensor,
  dropout?: AttentionDropout,
  biasGrad = false,
): tf.Tensor2D {
  const { B, H, Lq, Lk, dk } = shape;
  const toHeads = (t: tf.Tensor, L: number) => rowsToHeads(t, B, L, H, dk);
  const toRows = (t: tf.Tensor, L: number) => headsToRows(t, B, L, H, dk);
  if (transposedMatmulIsSlow()) {
    return tf.tidy(() =>
      toRows(splitHeadAttention(toHeads(q, Lq), toHeads(k, Lk), toHeads(v, Lk), bias, dropout), Lq),
    );
  }
  const scale = dropout ? 1 / (1 - dropout.rate) : 1;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [q2, k2, v2] = args as tf.Tensor[];
    const b = biasGrad ? (args[3] as tf.Tensor) : bias;
    const [qh, kh, vh, probs, out] = tf.tidy(() => {
      const qh = toHeads(q2!, Lq);
      const kh = toHeads(k2!, Lk);
      const vh = toHeads(v2!, Lk);
      const probs = tf.softmax(tf.add(tf.matMul(qh, kh, false, true), b));
      const mixed = dropout ? tf.mul(probs, tf.mul(tf.cast(dropout.keep, 'float32'), scale)) : probs;
      return [qh, kh, vh, probs, toRows(tf.matMul(mixed, vh), Lq)];
    });
    save(dropout ? [qh!, kh!, vh!, probs!, dropout.keep] : [qh!, kh!, vh!, probs!]);
    return {
      value: out!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sq, sk, sv, p, keep] = saved as [
            tf.Tensor4D,
            tf.Tensor4D,
            tf.Tensor4D,
            tf.Tensor4D,
            tf.Tensor?,
          ];
          const m = keep ? tf.mul(tf.cast(keep, 'float32'), scale) : undefined;
          const dO = toHeads(dy, Lq);
          const dMixed = tf.matMul(dO, sv, false, true);
          const dP = m ? tf.mul(dMixed, m) : dMixed;
          const dS = tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true)));
          const grads = [
            toRows(tf.matMul(dS, sk), Lq),
            toRows(tf.matMul(dS, sq, true, false), Lk),
            toRows(tf.matMul(m ? tf.mul(p, m) : p, dO, true, false), Lk),
          ];
          return biasGrad ? [...grads, reduceToShape(dS, bias.shape)] : grads;
        }),
    };
  });
  return (biasGrad ? op(q, k, v, bias) : op(q, k, v)) as tf.Tensor2D;
}
