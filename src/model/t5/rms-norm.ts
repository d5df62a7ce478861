import * as tf from '@tensorflow/tfjs-core';

/**
 * T5's layer norm, y = w * x * r with r = 1 / sqrt(mean(x^2) + eps) per row, for a FROZEN weight w, with the
 * gradient written out: dx = r * (g - xhat * mean(g * xhat)), where g = dy * w and xhat = x * r.
 *
 * Why: differentiating the composed ops keeps x * r as well as x and r for the backward pass and spends about nine
 * passes over the [rows, d] activation on it (square, mean, rsqrt and both products, each with its broadcast
 * gradient); this saves only x and r (a column) and takes six. The forward values are the same ops in the same
 * order, so they are bit-identical to the composed version.
 */
export function frozenRmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    const r = tf.tidy(() => tf.rsqrt(tf.add(tf.mean(tf.square(input), -1, true), eps)));
    const value = tf.tidy(() => tf.mul(tf.mul(input, r), weight)) as tf.Tensor2D;
    save([input, r]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sx, sr] = saved as [tf.Tensor2D, tf.Tensor2D];
          const g = tf.mul(dy, weight);
          const xhat = tf.mul(sx, sr);
          const dot = tf.mean(tf.mul(g, xhat), -1, true);
          return tf.mul(sr, tf.sub(g, tf.mul(xhat, dot)));
        }),
    };
  });
  return op(x) as tf.Tensor2D;
}
