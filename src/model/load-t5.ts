import { loadT5Checkpoint } from './checkpoint/index.js';
import { T5Model } from './t5/index.js';

/**
 * Loads a frozen T5 from a local Hugging Face folder (config.json + model.safetensors or a sharded index).
 * The JS copies of the weights are dropped once they are on the backend.
 */
export function loadT5Model(dir: string): { model: T5Model; warnings: string[]; files: string[] } {
  const ckpt = loadT5Checkpoint(dir);
  const model = T5Model.fromWeights(ckpt.config, ckpt.tensors);
  ckpt.tensors.clear();
  return { model, warnings: ckpt.warnings, files: ckpt.files };
}
