/**
 * The embedded bank store: plain files under one directory, shareable by processes on one host (or a
 * POSIX-correct shared filesystem).
 *
 *   root/BANK                              marker with the layout version
 *   root/blobs/sha256/<2 hex>/<64 hex>     tensor bytes (raw little-endian float32)
 *   root/versions/<id>.json                manifests
 *   root/heads/<job>                       the job's head version id (+ heads/<job>.lock during a CAS)
 *   root/tags/<tag>                        the version id a tag names
 *
 * Every file is written to a temp file beside its target, fsynced, renamed into place and the folder fsynced,
 * so readers never see a partial file and a crash leaves the old one.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../model/checkpoint/safetensors.js';
import { BankStoreError, TagExistsError } from './errors.js';
import { type FileLockOptions, withFileLock } from './file-lock.js';
import { isDigest, isVersionId } from './manifest.js';
import type { BankStore, BlobInfo, HeadCasResult } from './store.js';

export const DIRECTORY_LAYOUT = 'promptmesh-bank/1';

export interface DirectoryStoreOptions {
  /** Head lock: stale after `staleMs` (default 30 s), give up after `timeoutMs` (default 15 s). */
  lock?: FileLockOptions;
  /** Create the bank when `root` holds none (default true). False: a missing bank is an error (read-only tools). */
  create?: boolean;
}

export class DirectoryStore implements BankStore {
  readonly location: string;
  private readonly lockOpts: FileLockOptions;

  constructor(
    readonly root: string,
    opts: DirectoryStoreOptions = {},
  ) {
    this.root = path.resolve(root);
    this.location = this.root;
    this.lockOpts = opts.lock ?? {};
    const marker = path.join(this.root, 'BANK');
    if (fs.existsSync(this.root) && !fs.statSync(this.root).isDirectory()) {
      throw new BankStoreError(`bank path ${this.root} exists and is not a directory`);
    }
    if (opts.create === false && !fs.existsSync(marker)) {
      throw new BankStoreError(
        `no bank at ${this.root} (no BANK file there); check the path, or commit to create one`,
      );
    }
    for (const d of ['blobs/sha256', 'versions', 'heads', 'tags'])
      fs.mkdirSync(path.join(this.root, d), { recursive: true });
    if (!fs.existsSync(marker)) writeText(marker, `${DIRECTORY_LAYOUT}\n`);
  }

  blobPath(digest: string): string {
    const hex = digestHex(digest);
    return path.join(this.root, 'blobs', 'sha256', hex.slice(0, 2), hex);
  }

  manifestPath(id: string): string {
    if (!isVersionId(id)) throw new BankStoreError(`not a version id: '${id}'`);
    return path.join(this.root, 'versions', `${id}.json`);
  }

  headPath(job: string): string {
    return path.join(this.root, 'heads', job);
  }

  tagPath(tag: string): string {
    return path.join(this.root, 'tags', tag);
  }

  async hasBlob(digest: string): Promise<boolean> {
    return fs.existsSync(this.blobPath(digest));
  }

  async putBlob(digest: string, data: Uint8Array): Promise<void> {
    const file = this.blobPath(digest);
    if (fs.existsSync(file)) {
      // Reused by a new commit: refresh its time so a concurrent gc's grace period protects it.
      const now = new Date();
      fs.utimesSync(file, now, now);
      return;
    }
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomic(file, (fd) => writeAll(fd, data));
  }

  async getBlob(digest: string): Promise<Uint8Array | null> {
    try {
      return fs.readFileSync(this.blobPath(digest));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async deleteBlob(digest: string): Promise<boolean> {
    const file = this.blobPath(digest);
    if (!fs.existsSync(file)) return false;
    fs.rmSync(file, { force: true });
    return true;
  }

  async listBlobs(): Promise<BlobInfo[]> {
    const base = path.join(this.root, 'blobs', 'sha256');
    const out: BlobInfo[] = [];
    for (const sub of safeReaddir(base)) {
      for (const name of safeReaddir(path.join(base, sub))) {
        if (!/^[0-9a-f]{64}$/.test(name)) continue; // temp files of writers in flight
        const st = fs.statSync(path.join(base, sub, name));
        out.push({ digest: `sha256:${name}`, bytes: st.size, mtimeMs: st.mtimeMs });
      }
    }
    return out;
  }

  async putManifest(id: string, text: string): Promise<boolean> {
    const file = this.manifestPath(id);
    if (fs.existsSync(file)) return false;
    writeText(file, text);
    return true;
  }

  async getManifest(id: string): Promise<string | null> {
    try {
      return fs.readFileSync(this.manifestPath(id), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async deleteManifest(id: string): Promise<void> {
    fs.rmSync(this.manifestPath(id), { force: true });
  }

  async listManifestIds(): Promise<string[]> {
    return safeReaddir(path.join(this.root, 'versions'))
      .filter((n) => /^[0-9a-f]{64}\.json$/.test(n))
      .map((n) => n.slice(0, 64));
  }

  async getHead(job: string): Promise<string | null> {
    return readPointer(this.headPath(job));
  }

  async compareAndSetHead(job: string, expected: string | null, next: string): Promise<HeadCasResult> {
    const file = this.headPath(job);
    return withFileLock(
      `${file}.lock`,
      (): HeadCasResult => {
        const actual = readPointer(file);
        // Already at `next` (the same content committed again): idempotent, like the JetStream store.
        if (actual === next) return { ok: true };
        if (actual !== expected) return { ok: false, actual };
        writeText(file, `${next}\n`);
        return { ok: true };
      },
      this.lockOpts,
    );
  }

  async listHeads(): Promise<Map<string, string>> {
    // Job names have no dots, so anything with one is a lock or a temp file.
    return this.readPointers(path.join(this.root, 'heads'), (n) => !n.includes('.'));
  }

  async getTag(tag: string): Promise<string | null> {
    return readPointer(this.tagPath(tag));
  }

  async setTag(tag: string, id: string, force: boolean): Promise<void> {
    const file = this.tagPath(tag);
    if (force) {
      writeText(file, `${id}\n`);
      return;
    }
    // Link a complete temp file into place: link never overwrites, so a concurrent tagger cannot be clobbered.
    const tmp = path.join(path.dirname(file), `.${tag}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    writeText(tmp, `${id}\n`);
    try {
      fs.linkSync(tmp, file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const current = readPointer(file);
      if (current !== id) throw new TagExistsError(tag, current ?? '(unreadable)', id);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  async deleteTag(tag: string): Promise<boolean> {
    const file = this.tagPath(tag);
    if (!fs.existsSync(file)) return false;
    fs.rmSync(file, { force: true });
    return true;
  }

  async listTags(): Promise<Map<string, string>> {
    // Temp files start with a dot; tag names cannot.
    return this.readPointers(path.join(this.root, 'tags'), (n) => !n.startsWith('.'));
  }

  async close(): Promise<void> {}

  private readPointers(dir: string, accept: (name: string) => boolean): Map<string, string> {
    const out = new Map<string, string>();
    for (const name of safeReaddir(dir).sort()) {
      if (!accept(name)) continue;
      const id = readPointer(path.join(dir, name));
      if (id) out.set(name, id);
    }
    return out;
  }
}

function digestHex(digest: string): string {
  if (!isDigest(digest)) throw new BankStoreError(`not a sha256 digest: '${digest}'`);
  return digest.slice('sha256:'.length);
}

function readPointer(file: string): string | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const id = text.trim();
  if (!isVersionId(id)) {
    throw new BankStoreError(
      `${file} should hold a version id but holds '${id.slice(0, 80)}'; repair or remove it`,
    );
  }
  return id;
}

function writeText(file: string, text: string): void {
  writeFileAtomic(file, (fd) => writeAll(fd, Buffer.from(text, 'utf8')));
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}
