import * as tf from '@tensorflow/tfjs-core';

/**
 * Which formulation of an op the active backend runs fastest. Measured, not assumed (docs/backends.md):
 * - wasm runs transposed and batched (rank 3/4) matmuls at 1-2 GFLOP/s against ~30 for a plain 2-D matmul, so
 *   frozen linears keep a W^T copy and attention runs per head as plain 2-D matmuls.
 * - native TensorFlow (tfjs-node, -node-gpu) runs `matMul(x, W, false, true)` and batched matmuls at full rate
 *   (BLAS/cuBLAS take the transpose as a flag), so the W^T copies would only cost memory: 0.3 GB on t5-small.
 */
export function transposedMatmulIsSlow(): boolean {
  return tf.getBackend() === 'wasm';
}
