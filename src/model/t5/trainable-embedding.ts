import * as tf from '@tensorflow/tfjs-core';

/**
 * Embedding lookup table[ids] -> [n, d] whose gradient reaches the table. tf.gather's own gradient needs the
 * UnsortedSegmentSum kernel, which the wasm backend does not have; the lookups of one batch are few (n x d values),
 * so the scatter-add is done in JS and handed back as one dense [vocab, d] tensor.
 */
export function gatherRowsTrainable(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const [V, d] = table.shape;
  const idx = ids.dataSync() as Int32Array;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const t = args[0] as tf.Tensor2D;
    return {
      value: tf.gather(t, ids),
      gradFunc: (dy: tf.Tensor) => {
        const g = dy.dataSync() as Float32Array;
        const out = new Float32Array(V * d);
        for (let r = 0; r < idx.length; r++) {
          const base = idx[r]! * d;
          for (let j = 0; j < d; j++) out[base + j] = out[base + j]! + g[r * d + j]!;
        }
        return tf.tensor2d(out, [V, d]);
      },
    };
  });
  return op(table) as tf.Tensor2D;
}
