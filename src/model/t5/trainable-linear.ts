import * as tf from '@tensorflow/tfjs-core';

/**
 * A linear map y = x W^T whose weight W [out, in] (the Hugging Face layout) is a tf.Variable that learns: used only
 * when the backbone itself is trained (pretraining the demo backbone), never for prompt training.
 *
 * Why a custom gradient: tf.matMul(x, W, false, true) and its default gradient use transposed matmuls, which the
 * wasm backend runs 20-40x slower than plain 2-D ones (see frozen-linear.ts). Here every product is a plain 2-D
 * matmul on an explicitly transposed operand: y = x (W^T), dx = dy W, dW = (dy^T) x. W changes every update, so
 * W^T cannot be cached as FrozenLinear does; one transpose of a small weight per call is cheap next to the matmul.
 */
export class TrainableLinear {
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly op: (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D;

  constructor(readonly w: tf.Variable<tf.Rank.R2> | tf.Tensor2D) {
    this.outFeatures = w.shape[0];
    this.inFeatures = w.shape[1];
    this.op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [x, weight, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
      save([x, weight]);
      return {
        value: tf.tidy(() => tf.matMul(x, tf.transpose(weight))),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor2D];
          return tf.tidy(() => [
            tf.matMul(dy as tf.Tensor2D, sw),
            tf.matMul(tf.transpose(dy as tf.Tensor2D), sx),
          ]);
        },
      };
    }) as (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D;
  }

  /** x: [n, in] -> [n, out]. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return this.op(x, this.w);
  }

  macs(rows: number): number {
    return rows * this.inFeatures * this.outFeatures;
  }

  dispose(): void {
    this.w.dispose();
  }
}
