import * as tf from '@tensorflow/tfjs-core';

/**
 * A linear map y = x W^T with a frozen weight W of shape [out, in] (the Hugging Face layout).
 *
 * Why a custom gradient: the default gradient of matMul(x, W, false, true) runs a transposed matmul, which the wasm
 * backend executes 20-40x slower than a plain 2-D matmul. Keeping both W^T (for the forward pass) and W (for the
 * input gradient dx = dy W) resident makes both directions plain 2-D matmuls, and since W is frozen no weight
 * gradient is ever formed.
 */
export class FrozenLinear {
  /** [in, out], used by the forward pass. */
  readonly wT: tf.Tensor2D;
  /** [out, in], used by the backward pass. */
  readonly w: tf.Tensor2D;
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly op: (x: tf.Tensor2D) => tf.Tensor2D;

  constructor(w: tf.Tensor2D) {
    this.w = w;
    this.outFeatures = w.shape[0];
    this.inFeatures = w.shape[1];
    this.wT = tf.keep(tf.transpose(w));
    const wT = this.wT;
    this.op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
      value: tf.matMul(args[0] as tf.Tensor2D, wT),
      gradFunc: (dy: tf.Tensor) => tf.matMul(dy as tf.Tensor2D, w),
    })) as (x: tf.Tensor2D) => tf.Tensor2D;
  }

  /** x: [n, in] -> [n, out]. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return this.op(x);
  }

  /** Number of multiply-accumulates for n rows. */
  macs(rows: number): number {
    return rows * this.inFeatures * this.outFeatures;
  }

  dispose(): void {
    this.w.dispose();
    this.wT.dispose();
  }
}
