import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  readSafetensors,
  type SafetensorsTensor,
  writeFileAtomic,
  writeSafetensors,
} from '../model/checkpoint/index.js';
import type { TensorMap } from '../model/tensor-map.js';

export const TENSORS_FILE = 'prompts.safetensors';
export const MANIFEST_FILE = 'manifest.json';

/** What a trained method run leaves behind, next to its tensors. */
export interface TrainedManifest {
  format: 'promptmesh-prompts/1';
  method: string;
  methodConfig: unknown;
  tasks: string[];
  step: number;
  /** Parameter name -> shape, trainable or frozen. */
  tensors: Record<string, { shape: number[]; trainable: boolean }>;
  metrics: Record<string, number>;
  backbone: { dModel: number; vocabSize: number };
  createdAt: string;
}

export interface TrainedState {
  manifest: TrainedManifest;
  tensors: TensorMap;
}

/** Writes `prompts.safetensors` (tensors first) then `manifest.json`, each atomically. */
export function saveTrainedState(dir: string, state: TrainedState): void {
  fs.mkdirSync(dir, { recursive: true });
  const tensors: Record<string, SafetensorsTensor> = {};
  for (const [name, t] of state.tensors) tensors[name] = { dtype: 'F32', shape: t.shape, data: t.data };
  writeSafetensors(path.join(dir, TENSORS_FILE), tensors, { format: 'pt', producer: 'promptmesh' });
  const json = Buffer.from(`${JSON.stringify(state.manifest, null, 2)}\n`);
  writeFileAtomic(path.join(dir, MANIFEST_FILE), (fd) => fs.writeSync(fd, json));
}

export class TrainedStateError extends Error {
  override name = 'TrainedStateError';
}

export function loadTrainedState(dir: string): TrainedState {
  const manifestPath = path.join(dir, MANIFEST_FILE);
  if (!fs.existsSync(manifestPath)) {
    throw new TrainedStateError(
      `${dir}: no ${MANIFEST_FILE}; is this a folder written by 'promptmesh train --out'?`,
    );
  }
  let manifest: TrainedManifest;
  try {
    manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as TrainedManifest;
  } catch (err) {
    throw new TrainedStateError(`${manifestPath}: not valid JSON (${(err as Error).message})`, {
      cause: err,
    });
  }
  const file = readSafetensors(path.join(dir, TENSORS_FILE), { float32: true });
  const tensors: TensorMap = new Map();
  for (const [name, info] of Object.entries(manifest.tensors)) {
    const t = file.tensors.get(name);
    if (!t)
      throw new TrainedStateError(
        `${path.join(dir, TENSORS_FILE)}: tensor '${name}' listed in the manifest is missing`,
      );
    if (t.shape.join(',') !== info.shape.join(',')) {
      throw new TrainedStateError(
        `${path.join(dir, TENSORS_FILE)}: tensor '${name}' has shape [${t.shape.join(', ')}] but the manifest says [${info.shape.join(', ')}]`,
      );
    }
    tensors.set(name, { shape: t.shape, data: t.data as Float32Array });
  }
  return { manifest, tensors };
}
