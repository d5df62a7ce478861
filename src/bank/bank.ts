/**
 * The versioned prompt bank: commits, reads, verifies, diffs, tags, exports/imports, composes and
 * garbage-collects versions on any `BankStore`.
 *
 * Commit order (why a crash or a lost race never leaves a visible half-version):
 *   1. write every tensor blob (content-addressed: an existing blob is reused, not rewritten);
 *   2. write the manifest (its id is the hash of its content);
 *   3. compare-and-set the job's head from the expected head to the new id.
 * Only step 3 makes the version the head. If it fails because the head moved, the manifest written in step 2 is
 * removed again and `BankConflictError` is thrown; the blobs stay until `gc` (they are unreferenced). A crash
 * between 2 and 3 leaves a manifest no head points at: it is listed (it is complete and verified) but is
 * never the head.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  readSafetensors,
  type SafetensorsTensor,
  writeSafetensors,
} from '../model/checkpoint/safetensors.js';
import {
  AmbiguousVersionError,
  BankConflictError,
  BankInputError,
  CorruptBlobError,
  GcRefusedError,
  InvalidManifestError,
  MissingBlobError,
  MissingManifestError,
  ShapeMismatchError,
  UnknownVersionError,
} from './errors.js';
import {
  type AttachmentEntry,
  checkJobName,
  checkTagName,
  configHash as hashConfig,
  isVersionId,
  type Manifest,
  type ManifestBody,
  manifestId,
  parseManifest,
  serializeManifest,
  type TensorEntry,
} from './manifest.js';
import { type BankStore, StoredBlobUnreadableError } from './store.js';
import { type BankTensor, blobDigest, bytesToFloat32, checkTensor, tensorBytes } from './tensor-bytes.js';

export type TensorInput = Map<string, BankTensor> | Record<string, BankTensor>;

export interface CommitInput {
  job: string;
  /** The version this one derives from (null for a job's first version). */
  parent: string | null;
  /**
   * The head the compare-and-set expects. Default: `parent`. Give the current head to commit a version derived
   * from an older one (resuming a job from an earlier version).
   */
  expectHead?: string | null;
  step: number;
  method: string;
  /** The job config; only its hash is stored. Or give `configHash` directly. */
  config?: unknown;
  configHash?: string;
  tensors: TensorInput;
  metrics?: Record<string, number>;
  /** Tags to point at the new version (moved if they named another one). */
  tags?: string[];
  extra?: Record<string, unknown>;
  /**
   * Files kept with the version (e.g. `history.jsonl`, `config.json`), stored as blobs and named in the manifest,
   * so they are verified on read, kept by gc and travel with the version.
   */
  attachments?: Record<string, { data: Uint8Array; mediaType: string }>;
  /** Default: now. */
  createdAt?: Date | string;
}

export interface VersionSummary {
  id: string;
  job: string;
  step: number;
  parent: string | null;
  method: string;
  createdAt: string;
  tags: string[];
  metrics: Record<string, number>;
  tensors: number;
  bytes: number;
  /** This version is its job's head. */
  head: boolean;
}

export interface UnreadableManifest {
  id: string;
  reason: string;
}

export interface TensorDiff {
  name: string;
  shapeA: number[];
  shapeB: number[];
  /** ||b - a||_2, or null when the shapes differ. */
  l2: number | null;
  /** ||a||_2 and ||b||_2, to put l2 in scale. */
  normA: number;
  normB: number;
}

export interface VersionDiff {
  a: string;
  b: string;
  added: { name: string; shape: number[] }[];
  removed: { name: string; shape: number[] }[];
  changed: TensorDiff[];
  unchanged: string[];
  metrics: { name: string; a: number | null; b: number | null; delta: number | null }[];
}

/** Expected shapes for import/compose: per-tensor shapes, or the backbone's d_model (the last dimension). */
export type ExpectShapes = Record<string, number[]> | number;

export interface ImportOptions {
  job: string;
  expectShapes?: ExpectShapes;
  /** Default: the job's head at import time (the import is committed on top of it). */
  parent?: string | null;
  method?: string;
  step?: number;
  tags?: string[];
}

export interface ComposeTake {
  /** A version id, prefix or tag. */
  version: string;
  tensor: string;
  /** Name in the new version (default: the same name). */
  as?: string;
}

export interface ComposeOptions {
  job: string;
  /** Start from all tensors of this version (then drop, then take). */
  base?: string;
  take?: ComposeTake[];
  /** Tensor names of the base to leave out. */
  drop?: string[];
  method?: string;
  step?: number;
  metrics?: Record<string, number>;
  tags?: string[];
  expectShapes?: ExpectShapes;
  extra?: Record<string, unknown>;
}

export interface GcOptions {
  /** Keep unreferenced blobs younger than this (a commit in flight writes blobs before its manifest). Default 15 min. */
  graceMs?: number;
  /** Report only. */
  dryRun?: boolean;
  /** Run even when some manifests are unreadable (their blobs may be deleted). */
  force?: boolean;
}

export interface GcResult {
  versions: number;
  blobsDeleted: number;
  bytesDeleted: number;
  blobsKept: number;
  bytesKept: number;
  /** Unreferenced but younger than the grace period. */
  blobsSkippedRecent: number;
  deleted: string[];
  dryRun: boolean;
}

export interface PromptBankOptions {
  /** Where non-fatal problems go (unreadable manifests skipped by `list`). Default: stderr. */
  onWarning?: (message: string) => void;
}

export const EXPORT_TENSORS_FILE = 'tensors.safetensors';
/** Attachment names are file names (exports write them as files): no separators, no leading dot. */
const ATTACHMENT_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
export const EXPORT_MANIFEST_FILE = 'manifest.json';
const PREFIX_MIN = 4;

export class PromptBank {
  private readonly warn: (message: string) => void;

  constructor(
    readonly store: BankStore,
    opts: PromptBankOptions = {},
  ) {
    this.warn = opts.onWarning ?? ((m) => process.stderr.write(`promptmesh bank: warning: ${m}\n`));
  }

  async commit(input: CommitInput): Promise<Manifest> {
    const job = checkJobName(input.job);
    const where = `commit to job '${job}'`;
    if (input.parent !== null && !isVersionId(input.parent)) {
      throw new BankInputError(
        `${where}: parent must be a full version id or null, got '${String(input.parent)}'`,
      );
    }
    if (!Number.isInteger(input.step) || input.step < 0) {
      throw new BankInputError(`${where}: step must be an integer >= 0, got ${input.step}`);
    }
    if (typeof input.method !== 'string' || input.method === '')
      throw new BankInputError(`${where}: method is required`);
    const metrics = checkMetrics(input.metrics ?? {}, where);
    const tags = (input.tags ?? []).map(checkTagName);
    const tensors = toMap(input.tensors);
    if (input.parent !== null) await this.readManifest(input.parent, `the parent of a ${where}`, false);

    const entries: Record<string, TensorEntry> = {};
    for (const name of [...tensors.keys()].sort()) {
      const t = tensors.get(name) as BankTensor;
      checkTensor(name, t, where);
      const bytes = tensorBytes(t.data);
      const digest = blobDigest(bytes);
      await this.store.putBlob(digest, bytes);
      entries[name] = { shape: [...t.shape], dtype: 'F32', digest, bytes: bytes.byteLength };
    }
    const createdAt =
      input.createdAt === undefined
        ? new Date().toISOString()
        : new Date(
            input.createdAt instanceof Date ? input.createdAt : Date.parse(input.createdAt),
          ).toISOString();
    const body: ManifestBody = {
      parent: input.parent,
      job,
      step: input.step,
      method: input.method,
      configHash: input.configHash ?? hashConfig(input.config ?? null),
      tensors: entries,
      metrics,
      createdAt,
    };
    if (input.extra !== undefined) body.extra = input.extra;
    if (input.attachments !== undefined) {
      const attachments: Record<string, AttachmentEntry> = {};
      for (const name of Object.keys(input.attachments).sort()) {
        const a = input.attachments[name]!;
        if (!ATTACHMENT_NAME.test(name)) {
          throw new BankInputError(
            `${where}: attachment name '${name}' must be a plain file name (letters, digits, '.', '_', '-')`,
          );
        }
        const digest = blobDigest(a.data);
        await this.store.putBlob(digest, a.data);
        attachments[name] = { digest, bytes: a.data.byteLength, mediaType: a.mediaType };
      }
      body.attachments = attachments;
    }
    const id = manifestId(body);
    const manifest: Manifest = { id, ...body, tags };
    const created = await this.store.putManifest(id, serializeManifest(manifest));
    const expected = input.expectHead === undefined ? input.parent : input.expectHead;
    const cas = await this.store.compareAndSetHead(job, expected, id);
    if (!cas.ok) {
      if (created) await this.store.deleteManifest(id);
      throw new BankConflictError(job, expected, cas.actual, id);
    }
    for (const tag of tags) await this.store.setTag(tag, id, true);
    return manifest;
  }

  /** The job's head version, or null when the job has none. */
  async head(job: string): Promise<Manifest | null> {
    checkJobName(job);
    const id = await this.store.getHead(job);
    if (id === null) return null;
    return this.readManifest(id, `the head of job '${job}'`);
  }

  /**
   * A version by full id, tag, `JOB@head`, or unique id prefix (at least 4 hex digits). Tags win over prefixes.
   */
  async get(ref: string): Promise<Manifest> {
    if (typeof ref !== 'string' || ref === '') throw new BankInputError('a version reference is required');
    if (isVersionId(ref)) {
      const text = await this.store.getManifest(ref);
      if (text === null) throw new UnknownVersionError(ref, this.store.location);
      return this.withTags(parseManifest(text, ref, this.where(ref)));
    }
    const at = /^(.+)@head$/.exec(ref);
    if (at) {
      const m = await this.head(at[1] as string);
      if (!m) throw new UnknownVersionError(ref, `${this.store.location} (job '${at[1]}' has no versions)`);
      return m;
    }
    if (/^[A-Za-z0-9_.-]+$/.test(ref)) {
      let tagged: string | null = null;
      try {
        tagged = await this.store.getTag(checkTagName(ref));
      } catch (e) {
        if (!(e instanceof BankInputError)) throw e;
      }
      if (tagged !== null) return this.readManifest(tagged, `tag '${ref}'`);
    }
    if (new RegExp(`^[0-9a-f]{${PREFIX_MIN},63}$`).test(ref)) {
      const hits = (await this.store.listManifestIds()).filter((id) => id.startsWith(ref)).sort();
      if (hits.length > 1) throw new AmbiguousVersionError(ref, hits);
      if (hits.length === 1) return this.readManifest(hits[0] as string, `prefix '${ref}'`);
    }
    throw new UnknownVersionError(ref, this.store.location);
  }

  /** Every readable version (of one job, if given), newest first. Unreadable manifests are reported and skipped. */
  async list(opts: { job?: string } = {}): Promise<VersionSummary[]> {
    const { versions, unreadable } = await this.scan(opts);
    for (const u of unreadable) this.warn(`skipping manifest ${u.id}: ${u.reason}`);
    return versions;
  }

  /** Like `list`, but hands back the unreadable manifests instead of warning. */
  async scan(
    opts: { job?: string } = {},
  ): Promise<{ versions: VersionSummary[]; unreadable: UnreadableManifest[] }> {
    if (opts.job !== undefined) checkJobName(opts.job);
    const [ids, heads, tagMap] = await Promise.all([
      this.store.listManifestIds(),
      this.store.listHeads(),
      this.store.listTags(),
    ]);
    const headIds = new Set(heads.values());
    const tagsOf = invert(tagMap);
    const versions: VersionSummary[] = [];
    const unreadable: UnreadableManifest[] = [];
    for (const id of ids) {
      let m: Manifest;
      try {
        const text = await this.store.getManifest(id);
        if (text === null) continue; // removed while listing (a lost race's cleanup)
        m = parseManifest(text, id, this.where(id));
      } catch (e) {
        if (!(e instanceof InvalidManifestError)) throw e;
        unreadable.push({ id, reason: e.reason });
        continue;
      }
      if (opts.job !== undefined && m.job !== opts.job) continue;
      const bytes = Object.values(m.tensors).reduce((a, t) => a + t.bytes, 0);
      versions.push({
        id: m.id,
        job: m.job,
        step: m.step,
        parent: m.parent,
        method: m.method,
        createdAt: m.createdAt,
        tags: tagsOf.get(m.id) ?? [],
        metrics: m.metrics,
        tensors: Object.keys(m.tensors).length,
        bytes,
        head: headIds.has(m.id) && heads.get(m.job) === m.id,
      });
    }
    versions.sort(
      (x, y) => y.createdAt.localeCompare(x.createdAt) || y.step - x.step || x.id.localeCompare(y.id),
    );
    return { versions, unreadable };
  }

  /** Every tensor of a version, each blob verified against its digest. */
  async load(ref: string, opts: { names?: string[] } = {}): Promise<Map<string, BankTensor>> {
    const m = await this.get(ref);
    const names = opts.names ?? Object.keys(m.tensors).sort();
    const out = new Map<string, BankTensor>();
    for (const name of names) out.set(name, await this.loadTensor(m, name));
    return out;
  }

  /** What changed from version `a` to version `b`. Only tensors whose digests differ are read. */
  /** The bytes of a version's attachment (verified), or null when the version has none of that name. */
  async attachment(ref: string, name: string): Promise<Uint8Array | null> {
    const m = await this.get(ref);
    const entry = m.attachments?.[name];
    return entry ? this.readBlob(m, name, entry, 'attachment') : null;
  }

  /**
   * A version and its ancestors, newest first, following `parent` until a job's first version (or `limit`
   * versions). A missing ancestor ends the walk with an error naming it.
   */
  async lineage(ref: string, limit = Number.POSITIVE_INFINITY): Promise<Manifest[]> {
    const out: Manifest[] = [await this.get(ref)];
    while (out.length < limit) {
      const last = out[out.length - 1]!;
      if (last.parent === null) break;
      out.push(await this.readManifest(last.parent, `the parent of version ${last.id}`));
    }
    return out;
  }

  async diff(aRef: string, bRef: string): Promise<VersionDiff> {
    const [a, b] = [await this.get(aRef), await this.get(bRef)];
    const out: VersionDiff = {
      a: a.id,
      b: b.id,
      added: [],
      removed: [],
      changed: [],
      unchanged: [],
      metrics: [],
    };
    const names = [...new Set([...Object.keys(a.tensors), ...Object.keys(b.tensors)])].sort();
    for (const name of names) {
      const ta = a.tensors[name];
      const tb = b.tensors[name];
      if (!ta && tb) out.added.push({ name, shape: tb.shape });
      else if (ta && !tb) out.removed.push({ name, shape: ta.shape });
      else if (ta && tb) {
        if (ta.digest === tb.digest) {
          out.unchanged.push(name);
          continue;
        }
        const da = (await this.loadTensor(a, name)).data;
        const db = (await this.loadTensor(b, name)).data;
        const sameShape = ta.shape.length === tb.shape.length && ta.shape.every((d, i) => d === tb.shape[i]);
        let l2: number | null = null;
        if (sameShape) {
          let s = 0;
          for (let i = 0; i < da.length; i++) {
            const d = (db[i] as number) - (da[i] as number);
            s += d * d;
          }
          l2 = Math.sqrt(s);
        }
        out.changed.push({ name, shapeA: ta.shape, shapeB: tb.shape, l2, normA: norm(da), normB: norm(db) });
      }
    }
    const metricNames = [...new Set([...Object.keys(a.metrics), ...Object.keys(b.metrics)])].sort();
    for (const name of metricNames) {
      const va = a.metrics[name] ?? null;
      const vb = b.metrics[name] ?? null;
      out.metrics.push({ name, a: va, b: vb, delta: va !== null && vb !== null ? vb - va : null });
    }
    return out;
  }

  /** Points `tag` at a version. An existing tag naming another version is moved only with `force`. */
  async tag(ref: string, tag: string, opts: { force?: boolean } = {}): Promise<Manifest> {
    checkTagName(tag);
    const m = await this.get(ref);
    await this.store.setTag(tag, m.id, opts.force ?? false);
    return this.withTags(m);
  }

  async untag(tag: string): Promise<boolean> {
    return this.store.deleteTag(checkTagName(tag));
  }

  /** Writes `dir/tensors.safetensors` (verified tensors) and `dir/manifest.json`. */
  async export(ref: string, dir: string): Promise<{ manifest: Manifest; files: string[] }> {
    const m = await this.get(ref);
    const tensors = await this.load(m.id);
    fs.mkdirSync(dir, { recursive: true });
    const st = new Map<string, SafetensorsTensor>();
    for (const [name, t] of tensors) st.set(name, { dtype: 'F32', shape: t.shape, data: t.data });
    const tensorsFile = path.join(dir, EXPORT_TENSORS_FILE);
    const manifestFile = path.join(dir, EXPORT_MANIFEST_FILE);
    writeSafetensors(tensorsFile, st, { 'promptmesh.version': m.id, 'promptmesh.job': m.job });
    const tmp = `${manifestFile}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, serializeManifest(m));
    fs.renameSync(tmp, manifestFile);
    // Attachments (run history, resolved config) travel with the export as files of their own names.
    const attached: string[] = [];
    for (const name of Object.keys(m.attachments ?? {}).sort()) {
      if (name === EXPORT_TENSORS_FILE || name === EXPORT_MANIFEST_FILE) continue;
      const file = path.join(dir, name);
      fs.writeFileSync(file, (await this.attachment(m.id, name))!);
      attached.push(file);
    }
    return { manifest: m, files: [tensorsFile, manifestFile, ...attached] };
  }

  /**
   * Commits the tensors of an export directory (or any directory with `tensors.safetensors`; a bare
   * `.safetensors` file path also works) as a new version of `job`, on top of its head. Float tensors of other
   * dtypes (F16, BF16) are widened to F32. With `manifest.json` present, its step, method, metrics and config hash
   * are kept and every tensor must match its digest there.
   */
  async import(source: string, opts: ImportOptions): Promise<Manifest> {
    const job = checkJobName(opts.job);
    const isFile = fs.existsSync(source) && fs.statSync(source).isFile();
    const dir = isFile ? path.dirname(source) : source;
    const tensorsFile = isFile ? source : path.join(dir, EXPORT_TENSORS_FILE);
    if (!fs.existsSync(tensorsFile)) {
      throw new BankInputError(
        `import: ${tensorsFile} not found (expected a directory written by 'bank export')`,
      );
    }
    const manifestFile = path.join(dir, EXPORT_MANIFEST_FILE);
    let src: Manifest | null = null;
    if (!isFile && fs.existsSync(manifestFile)) {
      const text = fs.readFileSync(manifestFile, 'utf8');
      let id = '';
      try {
        id = String((JSON.parse(text) as { id?: unknown }).id ?? '');
      } catch {
        // parseManifest below reports it
      }
      src = parseManifest(text, id, manifestFile);
    }
    const contents = readSafetensors(tensorsFile, { float32: true });
    const tensors = new Map<string, BankTensor>();
    for (const [name, t] of contents.tensors) {
      if (!(t.data instanceof Float32Array)) {
        throw new BankInputError(
          `import: tensor '${name}' in ${tensorsFile} has dtype ${t.dtype}; only float tensors can be imported`,
        );
      }
      tensors.set(name, { shape: t.shape, data: t.data });
    }
    checkShapes(tensors, opts.expectShapes, tensorsFile);
    if (src) {
      for (const [name, entry] of Object.entries(src.tensors)) {
        const t = tensors.get(name);
        if (!t)
          throw new BankInputError(
            `import: ${manifestFile} lists tensor '${name}', but ${tensorsFile} lacks it`,
          );
        const digest = blobDigest(tensorBytes(t.data));
        if (digest !== entry.digest) {
          throw new CorruptBlobError(src.id, name, entry.digest, `${tensorsFile} holds ${digest}`, {
            actual: digest,
          });
        }
      }
      for (const name of tensors.keys()) {
        if (!src.tensors[name])
          throw new BankInputError(`import: tensor '${name}' in ${tensorsFile} is not in ${manifestFile}`);
      }
    }
    // Attachments the manifest names travel along when their files are there (a `bank export` or `train --out`
    // folder); a file that does not match its digest is refused like a tensor.
    const attachments: NonNullable<CommitInput['attachments']> = {};
    for (const [name, a] of Object.entries(src?.attachments ?? {})) {
      const file = path.join(dir, name);
      if (!fs.existsSync(file)) continue;
      const data = new Uint8Array(fs.readFileSync(file));
      const digest = blobDigest(data);
      if (digest !== a.digest) {
        throw new CorruptBlobError(src!.id, name, a.digest, `${file} holds ${digest}`, {
          actual: digest,
          kind: 'attachment',
        });
      }
      attachments[name] = { data, mediaType: a.mediaType };
    }
    const parent = opts.parent === undefined ? ((await this.store.getHead(job)) ?? null) : opts.parent;
    const extra: Record<string, unknown> = {
      ...(src?.extra ?? {}),
      importedFrom: { path: path.resolve(source), version: src?.id ?? null, job: src?.job ?? null },
    };
    const commit: CommitInput = {
      job,
      parent,
      step: opts.step ?? src?.step ?? 0,
      method: opts.method ?? src?.method ?? 'imported',
      configHash: src?.configHash ?? hashConfig(null),
      tensors,
      metrics: src?.metrics ?? {},
      extra,
      ...(Object.keys(attachments).length > 0 ? { attachments } : {}),
    };
    if (opts.tags) commit.tags = opts.tags;
    return this.commit(commit);
  }

  /**
   * A new version of `job` whose tensors are taken from earlier versions: everything of `base` minus `drop`,
   * plus each `take` (renamed with `as`). This is how an ATTEMPT source set gains or loses a source prompt.
   * Committed on top of the job's head.
   */
  async compose(opts: ComposeOptions): Promise<Manifest> {
    const job = checkJobName(opts.job);
    const tensors = new Map<string, BankTensor>();
    const provenance: { version: string; tensor: string; as: string }[] = [];
    let base: Manifest | null = null;
    if (opts.base !== undefined) {
      base = await this.get(opts.base);
      const dropped = new Set(opts.drop ?? []);
      for (const d of dropped) {
        if (!base.tensors[d]) {
          throw new BankInputError(
            `compose: cannot drop '${d}': version ${base.id} has no such tensor (it has ${Object.keys(base.tensors).join(', ')})`,
          );
        }
      }
      for (const name of Object.keys(base.tensors).sort()) {
        if (dropped.has(name)) continue;
        tensors.set(name, await this.loadTensor(base, name));
        provenance.push({ version: base.id, tensor: name, as: name });
      }
    } else if (opts.drop && opts.drop.length > 0) {
      throw new BankInputError('compose: drop needs a base version to drop tensors from');
    }
    for (const take of opts.take ?? []) {
      const m = await this.get(take.version);
      if (!m.tensors[take.tensor]) {
        throw new BankInputError(
          `compose: version ${m.id} has no tensor '${take.tensor}' (it has ${Object.keys(m.tensors).join(', ')})`,
        );
      }
      const as = take.as ?? take.tensor;
      if (tensors.has(as)) {
        throw new BankInputError(`compose: two tensors would be named '${as}'; rename one with 'as'`);
      }
      tensors.set(as, await this.loadTensor(m, take.tensor));
      provenance.push({ version: m.id, tensor: take.tensor, as });
    }
    if (tensors.size === 0) throw new BankInputError('compose: the new version would have no tensors');
    checkShapes(tensors, opts.expectShapes, 'the composed version');
    const parent = (await this.store.getHead(job)) ?? null;
    const commit: CommitInput = {
      job,
      parent,
      step: opts.step ?? 0,
      method: opts.method ?? base?.method ?? 'compose',
      configHash: base?.configHash ?? hashConfig(null),
      tensors,
      metrics: opts.metrics ?? {},
      extra: { ...(opts.extra ?? {}), composedFrom: provenance, ...(base ? { base: base.id } : {}) },
    };
    if (opts.tags) commit.tags = opts.tags;
    return this.commit(commit);
  }

  /**
   * Deletes blobs no readable manifest references. Refuses (GcRefusedError) while any manifest is unreadable,
   * since its blobs cannot be told apart, unless `force`. Blobs younger than the grace period are kept: a commit
   * in flight writes its blobs before its manifest.
   */
  async gc(opts: GcOptions = {}): Promise<GcResult> {
    const graceMs = opts.graceMs ?? 15 * 60_000;
    const { versions, unreadable } = await this.scan();
    if (unreadable.length > 0 && !opts.force) {
      throw new GcRefusedError(
        `gc refused: ${unreadable.length} manifest(s) cannot be read (${unreadable.map((u) => `${u.id}: ${u.reason}`).join('; ')}); ` +
          'repair or remove them, or pass force to collect anyway',
      );
    }
    const referenced = new Set<string>();
    for (const v of versions) {
      const m = await this.get(v.id);
      for (const t of Object.values(m.tensors)) referenced.add(t.digest);
      for (const a of Object.values(m.attachments ?? {})) referenced.add(a.digest);
    }
    const now = Date.now();
    const result: GcResult = {
      versions: versions.length,
      blobsDeleted: 0,
      bytesDeleted: 0,
      blobsKept: 0,
      bytesKept: 0,
      blobsSkippedRecent: 0,
      deleted: [],
      dryRun: opts.dryRun ?? false,
    };
    for (const b of await this.store.listBlobs()) {
      if (referenced.has(b.digest)) {
        result.blobsKept++;
        result.bytesKept += b.bytes;
        continue;
      }
      if (b.mtimeMs !== undefined && now - b.mtimeMs < graceMs) {
        result.blobsSkippedRecent++;
        result.blobsKept++;
        result.bytesKept += b.bytes;
        continue;
      }
      if (!result.dryRun) await this.store.deleteBlob(b.digest);
      result.blobsDeleted++;
      result.bytesDeleted += b.bytes;
      result.deleted.push(b.digest);
    }
    return result;
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  private async loadTensor(m: Manifest, name: string): Promise<BankTensor> {
    const entry = m.tensors[name];
    if (!entry) {
      throw new BankInputError(
        `version ${m.id} has no tensor '${name}' (it has ${Object.keys(m.tensors).join(', ')})`,
      );
    }
    return { shape: [...entry.shape], data: bytesToFloat32(await this.readBlob(m, name, entry, 'tensor')) };
  }

  /** A blob a manifest names (tensor or attachment), verified against the manifest's size and digest. */
  private async readBlob(
    m: Manifest,
    name: string,
    entry: { digest: string; bytes: number },
    kind: 'tensor' | 'attachment',
  ): Promise<Uint8Array> {
    let bytes: Uint8Array | null;
    try {
      bytes = await this.store.getBlob(entry.digest);
    } catch (e) {
      if (e instanceof StoredBlobUnreadableError)
        throw new CorruptBlobError(m.id, name, entry.digest, e.message, { cause: e, kind });
      throw e;
    }
    if (bytes === null) throw new MissingBlobError(m.id, name, entry.digest, kind);
    const actual = blobDigest(bytes);
    if (bytes.byteLength !== entry.bytes) {
      throw new CorruptBlobError(
        m.id,
        name,
        entry.digest,
        `the blob has ${bytes.byteLength} bytes instead of ${entry.bytes} (they hash to ${actual})`,
        { actual, kind },
      );
    }
    if (actual !== entry.digest)
      throw new CorruptBlobError(m.id, name, entry.digest, `its bytes hash to ${actual}`, { actual, kind });
    return bytes;
  }

  private async readManifest(id: string, referrer: string, currentTags = true): Promise<Manifest> {
    const text = await this.store.getManifest(id);
    if (text === null) throw new MissingManifestError(id, referrer);
    try {
      const m = parseManifest(text, id, this.where(id));
      return currentTags ? await this.withTags(m) : m;
    } catch (e) {
      if (e instanceof InvalidManifestError)
        throw new MissingManifestError(id, referrer, e.reason, { cause: e });
      throw e;
    }
  }

  private async withTags(m: Manifest): Promise<Manifest> {
    const tags = invert(await this.store.listTags()).get(m.id) ?? [];
    return { ...m, tags };
  }

  private where(id: string): string {
    return `${this.store.location}, version ${id}`;
  }
}

function checkShapes(
  tensors: Map<string, BankTensor>,
  expect: ExpectShapes | undefined,
  where: string,
): void {
  if (expect === undefined) return;
  for (const [name, t] of tensors) {
    if (typeof expect === 'number') {
      if (t.shape.length < 1 || t.shape[t.shape.length - 1] !== expect) {
        throw new ShapeMismatchError(
          name,
          t.shape,
          `[..., ${expect}] (last dimension d_model = ${expect})`,
          where,
        );
      }
      continue;
    }
    const want = expect[name];
    if (want && (want.length !== t.shape.length || want.some((d, i) => d !== t.shape[i]))) {
      throw new ShapeMismatchError(name, t.shape, want, where);
    }
  }
}

function checkMetrics(metrics: Record<string, number>, where: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(metrics)) {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new BankInputError(`${where}: metric '${k}' must be a finite number, got ${String(v)}`);
    }
    out[k] = v;
  }
  return out;
}

function toMap(t: TensorInput): Map<string, BankTensor> {
  return t instanceof Map ? t : new Map(Object.entries(t));
}

function invert(m: Map<string, string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [k, v] of m) {
    const list = out.get(v) ?? [];
    list.push(k);
    out.set(v, list);
  }
  return out;
}

function norm(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (a[i] as number);
  return Math.sqrt(s);
}
