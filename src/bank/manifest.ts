/**
 * A bank version's manifest: everything about a version except its tensor bytes, which live in the store
 * content-addressed by their sha256. The id is the sha256 of the manifest's canonical JSON without `id` and
 * `tags`, so the same content always gets the same id and tags can be added later without changing it.
 */
import { createHash } from 'node:crypto';
import { BankInputError, InvalidManifestError } from './errors.js';

export const MANIFEST_FORMAT = 'promptmesh.bank.manifest/v1';

export interface TensorEntry {
  shape: number[];
  dtype: 'F32';
  /** `sha256:<hex>` of the raw little-endian float32 bytes. */
  digest: string;
  bytes: number;
}

/**
 * A named file kept with a version (its run history, its resolved job config), content-addressed like a tensor.
 * Attachments describe how a version was made; `load` and exports of tensors never read them.
 */
export interface AttachmentEntry {
  /** `sha256:<hex>` of the bytes. */
  digest: string;
  bytes: number;
  /** e.g. `application/jsonl` or `application/json`. */
  mediaType: string;
}

export interface Manifest {
  id: string;
  parent: string | null;
  job: string;
  step: number;
  method: string;
  configHash: string;
  tensors: Record<string, TensorEntry>;
  metrics: Record<string, number>;
  /** ISO 8601. */
  createdAt: string;
  tags: string[];
  extra?: Record<string, unknown>;
  /** Absent on versions without attachments (and on versions written before attachments existed). */
  attachments?: Record<string, AttachmentEntry>;
}

export type ManifestBody = Omit<Manifest, 'id' | 'tags'>;

const HEX64 = /^[0-9a-f]{64}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
// Job names become NATS subject tokens, KV keys and file names: keep them to one safe token.
const JOB = /^[A-Za-z0-9_-]{1,128}$/;
const TAG = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

export function isVersionId(s: string): boolean {
  return HEX64.test(s);
}

export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

export function checkJobName(job: string): string {
  if (typeof job !== 'string' || !JOB.test(job)) {
    throw new BankInputError(
      `invalid job name '${String(job)}': use 1-128 letters, digits, '_' or '-' (it becomes a NATS subject token and a file name)`,
    );
  }
  return job;
}

export function checkTagName(tag: string): string {
  if (typeof tag !== 'string' || tag.length > 128 || !TAG.test(tag) || HEX64.test(tag)) {
    throw new BankInputError(
      `invalid tag '${String(tag)}': use letters, digits, '_', '-' and single dots (e.g. best or v1.2), at most 128 characters, and not a 64-hex version id`,
    );
  }
  return tag;
}

/** JSON with object keys sorted at every level and no whitespace: the input to the version id. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw new BankInputError(`cannot hash a non-finite number (${value}) into a manifest`);
    }
    if (value === undefined) return 'null';
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The hash of a job config, recorded so a resume can tell whether it runs the same config. */
export function configHash(config: unknown): string {
  return `sha256:${sha256Hex(canonicalJson(config ?? null))}`;
}

export function manifestId(body: ManifestBody): string {
  const { id: _id, tags: _tags, ...rest } = body as Manifest;
  return sha256Hex(canonicalJson(rest));
}

/** The stored text of a manifest: pretty JSON with a trailing newline (readable with `cat`). */
export function serializeManifest(m: Manifest): string {
  return `${JSON.stringify({ format: MANIFEST_FORMAT, ...m }, null, 2)}\n`;
}

/**
 * Parses and checks a stored manifest. `expectedId` is the name it was stored under: a manifest whose
 * content does not hash to its name was edited or damaged and is refused.
 */
export function parseManifest(text: string, expectedId: string, where: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    const why =
      text.length === 0 ? 'the file is empty' : `not valid JSON (${(e as Error).message}); truncated?`;
    throw new InvalidManifestError(expectedId, where, why, { cause: e });
  }
  const bad = (reason: string) => new InvalidManifestError(expectedId, where, reason);
  if (!isObject(raw)) throw bad('not a JSON object');
  if (raw.format !== undefined && raw.format !== MANIFEST_FORMAT) {
    throw bad(`unknown format '${String(raw.format)}' (this promptmesh reads ${MANIFEST_FORMAT})`);
  }
  const str = (k: string) => {
    const v = raw[k];
    if (typeof v !== 'string') throw bad(`field '${k}' must be a string`);
    return v;
  };
  const id = str('id');
  const parent = raw.parent === null ? null : str('parent');
  if (parent !== null && !HEX64.test(parent)) throw bad(`field 'parent' is not a version id: '${parent}'`);
  const job = str('job');
  const method = str('method');
  const cfg = str('configHash');
  const createdAt = str('createdAt');
  if (Number.isNaN(Date.parse(createdAt))) throw bad(`field 'createdAt' is not an ISO date: '${createdAt}'`);
  const step = raw.step;
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 0)
    throw bad(`field 'step' must be an integer >= 0`);
  if (!isObject(raw.tensors)) throw bad(`field 'tensors' must be an object`);
  const tensors: Record<string, TensorEntry> = {};
  for (const [name, t] of Object.entries(raw.tensors)) {
    if (!isObject(t)) throw bad(`tensors['${name}'] must be an object`);
    const { shape, dtype, digest, bytes } = t;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw bad(`tensors['${name}'].shape must be a list of non-negative integers`);
    }
    if (dtype !== 'F32') throw bad(`tensors['${name}'].dtype must be 'F32', got '${String(dtype)}'`);
    if (typeof digest !== 'string' || !DIGEST.test(digest))
      throw bad(`tensors['${name}'].digest must be sha256:<hex>`);
    const n = (shape as number[]).reduce((a, b) => a * b, 1);
    if (bytes !== n * 4)
      throw bad(
        `tensors['${name}'].bytes is ${String(bytes)}, but shape [${shape.join(', ')}] needs ${n * 4}`,
      );
    tensors[name] = { shape: shape as number[], dtype: 'F32', digest, bytes: n * 4 };
  }
  if (!isObject(raw.metrics)) throw bad(`field 'metrics' must be an object`);
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(raw.metrics)) {
    if (typeof v !== 'number') throw bad(`metrics['${k}'] must be a number`);
    metrics[k] = v;
  }
  const tags = raw.tags === undefined ? [] : raw.tags;
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string'))
    throw bad(`field 'tags' must be a list of strings`);
  if (raw.extra !== undefined && !isObject(raw.extra)) throw bad(`field 'extra' must be an object`);
  let attachments: Record<string, AttachmentEntry> | undefined;
  if (raw.attachments !== undefined) {
    if (!isObject(raw.attachments)) throw bad(`field 'attachments' must be an object`);
    attachments = {};
    for (const [name, a] of Object.entries(raw.attachments)) {
      if (!isObject(a)) throw bad(`attachments['${name}'] must be an object`);
      const { digest, bytes, mediaType } = a;
      if (typeof digest !== 'string' || !DIGEST.test(digest))
        throw bad(`attachments['${name}'].digest must be sha256:<hex>`);
      if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes < 0)
        throw bad(`attachments['${name}'].bytes must be an integer >= 0`);
      if (typeof mediaType !== 'string') throw bad(`attachments['${name}'].mediaType must be a string`);
      attachments[name] = { digest, bytes, mediaType };
    }
  }
  const m: Manifest = {
    id,
    parent,
    job,
    step,
    method,
    configHash: cfg,
    tensors,
    metrics,
    createdAt,
    tags: tags as string[],
  };
  if (raw.extra !== undefined) m.extra = raw.extra as Record<string, unknown>;
  if (attachments !== undefined) m.attachments = attachments;
  const actual = manifestId(m);
  if (id !== expectedId) throw bad(`its id field is ${id}, but it is stored as ${expectedId}`);
  if (actual !== id)
    throw bad(`its content hashes to ${actual}, not its id: the manifest was edited or damaged`);
  return m;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
