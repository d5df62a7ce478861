/**
 * Float32 tensors on the host, by name: what the bank stores, checkpoints and safetensors files hold, stages hand
 * to each other and methods are created from. The one tensor-map type of the code base (device tensors are
 * tf.Tensor; these are plain arrays, safe to keep across steps and to send anywhere).
 */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export type TensorMap = Map<string, HostTensor>;
