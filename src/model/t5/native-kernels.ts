import * as tf from '@tensorflow/tfjs-core';

/**
 * TensorFlow ops that tfjs does not expose but the native binding can run, registered as tfjs kernels of the
 * `tensorflow` backend so that the engine tracks their outputs like any other. Each replaces a chain of tfjs ops
 * on the training hot path with one fused TensorFlow kernel (measured in docs/backends.md):
 *
 * - `PromptmeshSparseXent`: TensorFlow's SparseSoftmaxCrossEntropyWithLogits, the per-row loss and its gradient
 *   (softmax - onehot) in one pass over the [tokens, vocabulary] logits, where tfjs needs ten passes (max, sub,
 *   exp, sum, log, gather; then sub, exp, mul, scatter, sub).
 * - `PromptmeshReluGrad`: TensorFlow's ReluGrad, dy where y > 0, in place of greater + cast + multiply.
 *
 * Tried and dropped: TensorFlow's 2-D MatMul instead of the BatchMatMulV2 that tfjs-node runs for every matMul.
 * Alone on [1024, 512] x [512, 512] it ran at 230-250 GFLOP/s against 120-170, but the t5-small step took the
 * same time with it (linear layers 959 ms vs 925 ms of 189 matmuls), so the simpler path stays.
 */

const SPARSE_XENT = 'PromptmeshSparseXent';
const RELU_GRAD = 'PromptmeshReluGrad';

interface TfBinding {
  TF_ATTR_TYPE: number;
  TF_FLOAT: number;
  TF_INT32: number;
}

interface NodeBackend {
  binding: TfBinding;
  getInputTensorIds(tensors: tf.Tensor[]): unknown[];
  executeSingleOutput(name: string, attrs: unknown[], inputs: tf.TensorInfo[]): tf.TensorInfo;
  executeMultipleOutputs(name: string, attrs: unknown[], inputs: tf.TensorInfo[], n: number): tf.TensorInfo[];
}

let registered = false;

function typeAttr(b: NodeBackend, name: string, dtype: 'float32' | 'int32') {
  return {
    name,
    type: b.binding.TF_ATTR_TYPE,
    value: dtype === 'float32' ? b.binding.TF_FLOAT : b.binding.TF_INT32,
  };
}

function register(): void {
  if (registered) return;
  registered = true;
  tf.registerKernel({
    kernelName: SPARSE_XENT,
    backendName: 'tensorflow',
    kernelFunc: ({ inputs, backend }) => {
      const b = backend as unknown as NodeBackend;
      const { logits, labels } = inputs as { logits: tf.TensorInfo; labels: tf.TensorInfo };
      return b.executeMultipleOutputs(
        'SparseSoftmaxCrossEntropyWithLogits',
        [typeAttr(b, 'T', 'float32'), typeAttr(b, 'Tlabels', 'int32')],
        [logits, labels],
        2,
      );
    },
  });
  tf.registerKernel({
    kernelName: RELU_GRAD,
    backendName: 'tensorflow',
    kernelFunc: ({ inputs, backend }) => {
      const b = backend as unknown as NodeBackend;
      const { dy, y } = inputs as { dy: tf.TensorInfo; y: tf.TensorInfo };
      return b.executeSingleOutput('ReluGrad', [typeAttr(b, 'T', 'float32')], [dy, y]);
    },
  });
}

/** Whether the fused native kernels can run: the active backend is native TensorFlow. */
export function nativeKernelsAvailable(): boolean {
  if (tf.getBackend() !== 'tensorflow') return false;
  register();
  return true;
}

/** logits [N, V] float32, labels [N] int32 in [0, V) -> [loss [N], dLoss/dLogits [N, V]]. Native backend only. */
export function sparseSoftmaxCrossEntropy(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
): [tf.Tensor1D, tf.Tensor2D] {
  const out = tf.engine().runKernel(SPARSE_XENT, { logits, labels: tf.cast(labels, 'int32') }) as tf.Tensor[];
  return [out[0] as tf.Tensor1D, out[1] as tf.Tensor2D];
}

/** dy where y > 0, else 0 (y: a ReLU's output). Native backend only. */
export function reluGrad(dy: tf.Tensor, y: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(RELU_GRAD, { dy, y }) as tf.Tensor;
}

/**
 * Moves a tensor made from JavaScript data into TensorFlow now, and returns it. tfjs-node keeps such data in
 * JavaScript until the tensor's first use; for the weights of a model that meant every weight was held twice from
 * that first training step on (the JavaScript copy is freed, but into the heap that the process keeps), which was
 * 230 MB of the t5-small bench step's peak memory. A no-op on every other backend.
 */
export function uploadNow<T extends tf.Tensor>(t: T): T {
  if (tf.getBackend() === 'tensorflow') (tf.backend() as unknown as NodeBackend).getInputTensorIds([t]);
  return t;
}
