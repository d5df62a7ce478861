import * as tf from '@tensorflow/tfjs-core';
import { loadT5Checkpoint } from './checkpoint/index.js';
import { T5Model } from './t5/index.js';
import { uploadNow } from './t5/native-kernels.js';

/**
 * Loads a frozen T5 from a local Hugging Face folder (config.json + model.safetensors or a sharded index).
 * Each weight goes to the backend as soon as it is read, so JavaScript holds one weight at a time, not the model.
 */
export function loadT5Model(dir: string): { model: T5Model; warnings: string[]; files: string[] } {
  const weights = new Map<string, tf.Tensor>();
  try {
    const ckpt = loadT5Checkpoint(dir, {
      onTensor: (name, t) => weights.set(name, uploadNow(tf.tensor(t.data, t.shape, 'float32'))),
    });
    const model = T5Model.fromTensors(ckpt.config, weights);
    return { model, warnings: ckpt.warnings, files: ckpt.files };
  } catch (err) {
    for (const t of weights.values()) t.dispose();
    throw err;
  }
}
