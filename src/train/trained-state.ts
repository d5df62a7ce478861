/**
 * What `promptmesh train --out DIR` leaves per stage, DIR/<stage>/: the same folder `promptmesh bank export`
 * writes for a version (one trained-prompt format): `tensors.safetensors`, a bank `manifest.json` (with `parent:
 * null`, the job's id, the method config's hash and per-tensor digests, so `bank import` verifies and commits it
 * as is) and its attachments as files (`history.jsonl`, `job.json`). What only a trained stage knows (which tensors
 * are trainable, the method config, tasks, backbone size) is in the manifest's `extra`.
 *
 * Folders written before this format (`prompts.safetensors` + a `promptmesh-prompts/1` manifest) still load.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  blobDigest,
  configHash,
  EXPORT_MANIFEST_FILE,
  EXPORT_TENSORS_FILE,
  type Manifest,
  manifestId,
  parseManifest,
  serializeManifest,
  tensorBytes,
} from '../bank/index.js';
import {
  readSafetensors,
  type SafetensorsTensor,
  writeFileAtomic,
  writeSafetensors,
} from '../model/checkpoint/index.js';
import type { TensorMap } from '../model/tensor-map.js';

/** The files of this format (the bank's export names). */
export const TENSORS_FILE = EXPORT_TENSORS_FILE;
export const MANIFEST_FILE = EXPORT_MANIFEST_FILE;
const LEGACY_TENSORS_FILE = 'prompts.safetensors';

/** A trained stage, as the code uses it. */
export interface TrainedManifest {
  /** The job and stage that trained it. */
  job: string;
  stage: string;
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

/** Files written next to the tensors (they become the version's attachments on `bank import`). */
export type TrainedAttachments = Record<string, { data: Uint8Array; mediaType: string }>;

/** The bank manifest a trained stage is written with (what a version of the same content would have). */
export function trainedBankManifest(state: TrainedState, attachments: TrainedAttachments = {}): Manifest {
  const m = state.manifest;
  const tensors: Manifest['tensors'] = {};
  for (const name of [...state.tensors.keys()].sort()) {
    const t = state.tensors.get(name)!;
    const bytes = tensorBytes(t.data);
    tensors[name] = { shape: [...t.shape], dtype: 'F32', digest: blobDigest(bytes), bytes: bytes.byteLength };
  }
  const body: Omit<Manifest, 'id' | 'tags'> = {
    parent: null,
    job: m.job,
    step: m.step,
    method: m.method,
    configHash: configHash(m.methodConfig),
    tensors,
    metrics: m.metrics,
    createdAt: m.createdAt,
    extra: {
      stageName: m.stage,
      final: true,
      trainable: Object.entries(m.tensors)
        .filter(([, d]) => d.trainable)
        .map(([k]) => k)
        .sort(),
      methodConfig: m.methodConfig,
      tasks: m.tasks,
      backboneShape: m.backbone,
    },
  };
  const names = Object.keys(attachments).sort();
  if (names.length > 0) {
    body.attachments = Object.fromEntries(
      names.map((n) => {
        const a = attachments[n]!;
        return [n, { digest: blobDigest(a.data), bytes: a.data.byteLength, mediaType: a.mediaType }];
      }),
    );
  }
  return { id: manifestId(body), ...body, tags: [] };
}

/** Writes the tensors, then the attachments, then `manifest.json` last, each atomically. */
export function saveTrainedState(
  dir: string,
  state: TrainedState,
  attachments: TrainedAttachments = {},
): void {
  fs.mkdirSync(dir, { recursive: true });
  const tensors: Record<string, SafetensorsTensor> = {};
  for (const [name, t] of state.tensors) tensors[name] = { dtype: 'F32', shape: t.shape, data: t.data };
  const manifest = trainedBankManifest(state, attachments);
  writeSafetensors(path.join(dir, TENSORS_FILE), tensors, {
    format: 'pt',
    producer: 'promptmesh',
    'promptmesh.version': manifest.id,
    'promptmesh.job': manifest.job,
  });
  for (const [name, a] of Object.entries(attachments)) {
    writeFileAtomic(path.join(dir, name), (fd) => fs.writeSync(fd, a.data));
  }
  const json = Buffer.from(serializeManifest(manifest));
  writeFileAtomic(path.join(dir, MANIFEST_FILE), (fd) => fs.writeSync(fd, json));
}

export class TrainedStateError extends Error {
  override name = 'TrainedStateError';
}

function fromBankManifest(m: Manifest, dir: string): TrainedManifest {
  const extra = m.extra ?? {};
  const trainable = new Set(Array.isArray(extra.trainable) ? (extra.trainable as string[]) : []);
  return {
    job: m.job,
    stage: typeof extra.stageName === 'string' ? extra.stageName : path.basename(dir),
    method: m.method,
    methodConfig: extra.methodConfig ?? null,
    tasks: Array.isArray(extra.tasks) ? (extra.tasks as string[]) : [],
    step: m.step,
    tensors: Object.fromEntries(
      Object.entries(m.tensors).map(([k, t]) => [k, { shape: t.shape, trainable: trainable.has(k) }]),
    ),
    metrics: m.metrics,
    backbone: (extra.backboneShape as TrainedManifest['backbone']) ?? { dModel: 0, vocabSize: 0 },
    createdAt: m.createdAt,
  };
}

/** Reads a `train --out` stage folder (or a `bank export` folder); tensors are checked against the manifest. */
export function loadTrainedState(dir: string): TrainedState {
  const manifestPath = path.join(dir, MANIFEST_FILE);
  if (!fs.existsSync(manifestPath)) {
    throw new TrainedStateError(
      `${dir}: no ${MANIFEST_FILE}; is this a folder written by 'promptmesh train --out' or 'bank export'?`,
    );
  }
  const text = fs.readFileSync(manifestPath, 'utf8');
  let raw: { format?: unknown; id?: unknown };
  try {
    raw = JSON.parse(text) as typeof raw;
  } catch (err) {
    throw new TrainedStateError(`${manifestPath}: not valid JSON (${(err as Error).message})`, {
      cause: err,
    });
  }
  const legacy = raw.format === 'promptmesh-prompts/1';
  let manifest: TrainedManifest;
  let digests: Record<string, string> = {};
  if (legacy) {
    const old = raw as unknown as Omit<TrainedManifest, 'job' | 'stage'>;
    manifest = { ...old, job: 'train', stage: path.basename(dir) };
  } else {
    let m: Manifest;
    try {
      m = parseManifest(text, String(raw.id ?? ''), manifestPath);
    } catch (err) {
      throw new TrainedStateError((err as Error).message, { cause: err });
    }
    manifest = fromBankManifest(m, dir);
    digests = Object.fromEntries(Object.entries(m.tensors).map(([k, t]) => [k, t.digest]));
  }
  const tensorsPath = path.join(dir, legacy ? LEGACY_TENSORS_FILE : TENSORS_FILE);
  const file = readSafetensors(tensorsPath, { float32: true });
  const tensors: TensorMap = new Map();
  for (const [name, info] of Object.entries(manifest.tensors)) {
    const t = file.tensors.get(name);
    if (!t) throw new TrainedStateError(`${tensorsPath}: tensor '${name}' listed in the manifest is missing`);
    if (t.shape.join(',') !== info.shape.join(',')) {
      throw new TrainedStateError(
        `${tensorsPath}: tensor '${name}' has shape [${t.shape.join(', ')}] but the manifest says [${info.shape.join(', ')}]`,
      );
    }
    const data = t.data as Float32Array;
    const want = digests[name];
    if (want && blobDigest(tensorBytes(data)) !== want) {
      throw new TrainedStateError(
        `${tensorsPath}: tensor '${name}' does not match its digest in ${manifestPath}`,
      );
    }
    tensors.set(name, { shape: t.shape, data });
  }
  return { manifest, tensors };
}
