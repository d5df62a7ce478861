import * as tf from '@tensorflow/tfjs-core';

/**
 * `x[indices]` along axis 0 for a 2-D x [R, C] -> [...indices.shape, C], with a gradient every backend can run.
 *
 * Why not plain tf.gather: its registered gradient scatters with UnsortedSegmentSum, which the wasm backend does
 * not implement ("Kernel 'UnsortedSegmentSum' not registered for backend 'wasm'"). scatterND sums duplicate
 * indices exactly as the gather gradient must (a row chosen twice gets both contributions), and wasm has it.
 * Rows not chosen get exactly zero gradient, which is what hard retrieval (TPT's bank, SPT's memory) relies on.
 *
 * On native TensorFlow the gradient is a one-hot matmul instead: TensorFlow's GPU ScatterNd (and the
 * UnsortedSegmentSum of tf.gather's own gradient) add duplicate rows with atomics, in an order that changes from
 * run to run, so two replicas would drift apart by rounding. oneHot(indices)^T dy sums in a fixed order; the tables
 * gathered from here are small (prompts, banks, memories), so the [n, rows] one-hot costs little.
 */
export function gatherRows(x: tf.Tensor2D, indices: tf.Tensor): tf.Tensor {
  const [rows, cols] = x.shape;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const flat = tf.reshape(indices, [-1, 1]);
    // Saved tensors are kept by the engine until the backward pass, so an enclosing tidy cannot free them.
    save([flat]);
    return {
      value: tf.gather(input, indices),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const idx = saved[0]!;
        const g = tf.reshape(dy, [idx.shape[0]!, cols]);
        if (tf.getBackend() !== 'tensorflow') return tf.scatterND(idx, g, [rows, cols]);
        // A one-row table (a per-task prompt trained on one task): tf.oneHot refuses depth 1.
        if (rows === 1) return tf.sum(g, 0, true);
        return tf.tidy(() =>
          tf.matMul(tf.oneHot(tf.reshape(idx, [-1]) as tf.Tensor1D, rows, 1, 0, 'float32'), g, true),
        );
      },
    };
  });
  return op(x);
}
