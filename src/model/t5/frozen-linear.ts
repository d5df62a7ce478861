import * as tf from '@tensorflow/tfjs-core';
import { transposedMatmulIsSlow } from './kernel-paths.js';

/**
 * A linear map y = x W^T with a frozen weight W of shape [out, in] (the Hugging Face layout). Its gradient is only
 * dx = dy W: W is frozen, so no weight gradient is ever formed (the default gradient of matMul would form it).
 *
 * The forward pass depends on the backend (kernel-paths.ts): on native TensorFlow it is matMul(x, W, false, true),
 * which BLAS runs at full rate with no copy. On wasm a transposed matmul is 20-40x slower than a plain one, so a
 * resident W^T makes both directions plain 2-D matmuls, at the cost of a second copy of every frozen weight.
 */
export class FrozenLinear {
  /** [in, out], used by the forward pass on backends with slow transposed matmuls; undefined elsewhere. */
  private wT: tf.Tensor2D | undefined;
  /** [out, in], used by the backward pass. */
  readonly w: tf.Tensor2D;
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly op: (x: tf.Tensor2D) => tf.Tensor2D;

  constructor(w: tf.Tensor2D) {
    this.w = w;
    this.outFeatures = w.shape[0];
    this.inFeatures = w.shape[1];
    const wT = transposedMatmulIsSlow() ? tf.keep(tf.transpose(w)) : undefined;
    this.wT = wT;
    this.op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
      value: wT ? tf.matMul(args[0] as tf.Tensor2D, wT) : tf.matMul(args[0] as tf.Tensor2D, w, false, true),
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

  /** Frees only the transposed copy: for a head tied to an embedding that the model disposes itself. */
  disposeTranspose(): void {
    this.wT?.dispose();
    this.wT = undefined;
  }

  dispose(): void {
    this.w.dispose();
    this.disposeTranspose();
  }
}
