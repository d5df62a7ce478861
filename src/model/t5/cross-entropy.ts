import * as tf from '@tensorflow/tfjs-core';
import { nativeKernelsAvailable, sparseSoftmaxCrossEntropy } from './native-kernels.js';

/**
 * Per-row negative log-likelihood -log softmax(logits)[label], logits [N, V], labels [N] int32 -> [N].
 *
 * Why a custom gradient: over a 32k vocabulary the logits are the largest activation of a step (8 x 128 targets x
 * 32128 x 4 bytes = 131 MB), and the composed logSoftmax + oneHot + mul keeps about six such buffers alive, which
 * overflows the wasm backend's 4 GB heap on a t5-small step. This op keeps only the logits and the per-row
 * log-sum-exp, and builds dlogits = (softmax - onehot) * dy while freeing each full-size temporary at once.
 */
export function tokenNll(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  if (nativeKernelsAvailable()) return fusedTokenNll(logits, labels);
  const [N, V] = logits.shape;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [z, save] = [args[0] as tf.Tensor2D, args[1] as tf.GradSaveFunc];
    const flatIndex = tf.tidy(() =>
      tf.add(tf.mul(tf.range(0, N, 1, 'int32'), tf.scalar(V, 'int32')), tf.cast(labels, 'int32')),
    );
    const lse = logSumExp(z);
    const picked = tf.gather(tf.reshape(z, [N * V]), flatIndex);
    const value = tf.sub(lse, picked) as tf.Tensor1D;
    picked.dispose();
    save([z, lse, flatIndex]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sz, slse, sidx] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D];
        const dyCol = tf.reshape(dy, [N, 1]);
        const shifted = tf.sub(sz, tf.reshape(slse, [N, 1]));
        const probs = tf.exp(shifted);
        shifted.dispose();
        const scaled = tf.mul(probs, dyCol);
        probs.dispose();
        // Subtract dy at each row's label position: a sparse update, done on the flat buffer.
        const onehot = tf.scatterND(tf.reshape(sidx, [N, 1]), tf.reshape(dy, [N]), [N * V]);
        const grad = tf.sub(tf.reshape(scaled, [N * V]), onehot);
        scaled.dispose();
        onehot.dispose();
        dyCol.dispose();
        const out = tf.reshape(grad, [N, V]);
        grad.dispose();
        return out;
      },
    };
  });
  return op(logits) as tf.Tensor1D;
}

/** Row-wise log(sum(exp(z))) with the max subtracted for stability: [N, V] -> [N]. */
function logSumExp(z: tf.Tensor2D): tf.Tensor1D {
  const [N] = z.shape;
  const m = tf.max(z, -1);
  const shifted = tf.sub(z, tf.reshape(m, [N, 1]));
  const e = tf.exp(shifted);
  shifted.dispose();
  const s = tf.sum(e, -1);
  e.dispose();
  const out = tf.add(tf.log(s), m) as tf.Tensor1D;
  tf.dispose([m, s]);
  return out;
}

/**
 * The same on native TensorFlow, with its fused SparseSoftmaxCrossEntropyWithLogits: one kernel gives the loss and
 * dlogits = softmax - onehot, which is all the backward pass keeps (the logits themselves are not saved).
 */
function fusedTokenNll(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  const [N] = logits.shape;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [z, save] = [args[0] as tf.Tensor2D, args[1] as tf.GradSaveFunc];
    const [loss, dlogits] = sparseSoftmaxCrossEntropy(z, labels);
    save([dlogits]);
    return {
      value: loss,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(saved[0]!, tf.reshape(dy, [N, 1])),
    };
  });
  return op(logits) as tf.Tensor1D;
}
