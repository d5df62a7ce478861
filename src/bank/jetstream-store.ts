/**
 * The bank on NATS JetStream, for a cluster: a KV bucket `<prefix>_bank` holds manifests (`m.<id>`), heads
 * (`h.<job>`) and tags (`t.<tag>`); an object store `<prefix>_blobs` holds tensor bytes (objects
 * `sha256-<hex>`), because KV values are limited to the server's max_payload (1 MiB by default) and a prompt
 * bank's tensors are not.
 *
 * The head compare-and-set is a KV revision check: `kv.create` (no head yet) or `kv.update(key, id, revision)`,
 * which the server applies only if the key is still at the revision read, so two writers on any hosts can never
 * both advance the same head.
 *
 * Transient failures (a timeout, a restarting server, JetStream not yet recovered) are retried for `retryForMs`;
 * the connection's own reconnect logic brings the link back. Retried writes are idempotent: blobs and manifests
 * are content-addressed, and a CAS whose reply was lost is recognised by finding the head already at our id.
 */
import type { KV, KvEntry, NatsConnection, ObjectStore } from 'nats';
import { BankError, BankInputError, BankStoreError, TagExistsError } from './errors.js';
import { isDigest } from './manifest.js';
import { type BankStore, type BlobInfo, type HeadCasResult, StoredBlobUnreadableError } from './store.js';

export interface JetStreamStoreOptions {
  /** Bucket names are `<prefix>_bank` (KV) and `<prefix>_blobs` (object store). Default `promptmesh`. */
  bucketPrefix?: string;
  /** Stream replicas for new buckets (default 1; use 3 on a 3-node cluster). */
  replicas?: number;
  /** Keep retrying transient NATS failures this long (default 30 s). */
  retryForMs?: number;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();
const WRONG_LAST_SEQUENCE = 10071;

export class JetStreamStore implements BankStore {
  readonly location: string;
  readonly kvBucket: string;
  readonly objectBucket: string;
  private readonly replicas: number;
  private readonly retryForMs: number;
  private opening: Promise<{ kv: KV; os: ObjectStore }> | undefined;

  constructor(
    private readonly nc: NatsConnection,
    opts: JetStreamStoreOptions = {},
  ) {
    const prefix = opts.bucketPrefix ?? 'promptmesh';
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(prefix)) {
      throw new BankInputError(`invalid bucket prefix '${prefix}': use letters, digits, '_' or '-'`);
    }
    this.kvBucket = `${prefix}_bank`;
    this.objectBucket = `${prefix}_blobs`;
    this.replicas = opts.replicas ?? 1;
    this.retryForMs = opts.retryForMs ?? 30_000;
    this.location = `${nc.getServer()} (buckets ${this.kvBucket}, ${this.objectBucket})`;
  }

  /** Creates (or binds) both buckets now, so configuration errors surface at start-up. */
  static async open(nc: NatsConnection, opts: JetStreamStoreOptions = {}): Promise<JetStreamStore> {
    const s = new JetStreamStore(nc, opts);
    await s.buckets();
    return s;
  }

  static blobObjectName(digest: string): string {
    if (!isDigest(digest)) throw new BankStoreError(`not a sha256 digest: '${digest}'`);
    return `sha256-${digest.slice('sha256:'.length)}`;
  }

  private buckets(): Promise<{ kv: KV; os: ObjectStore }> {
    if (!this.opening) {
      this.opening = this.retry('open the bank buckets', async () => {
        const js = this.nc.jetstream();
        const kv = await js.views.kv(this.kvBucket, { history: 1, replicas: this.replicas });
        const os = await js.views.os(this.objectBucket, { replicas: this.replicas });
        return { kv, os };
      });
      this.opening.catch(() => {
        this.opening = undefined;
      });
    }
    return this.opening;
  }

  async hasBlob(digest: string): Promise<boolean> {
    const { os } = await this.buckets();
    const info = await this.retry('look up a blob', () => os.info(JetStreamStore.blobObjectName(digest)));
    return info !== null && !info.deleted;
  }

  async putBlob(digest: string, data: Uint8Array): Promise<void> {
    if (await this.hasBlob(digest)) return;
    const { os } = await this.buckets();
    await this.retry('store a blob', () => os.putBlob({ name: JetStreamStore.blobObjectName(digest) }, data));
  }

  async getBlob(digest: string): Promise<Uint8Array | null> {
    const { os } = await this.buckets();
    const name = JetStreamStore.blobObjectName(digest);
    return this.retry('read a blob', async () => {
      try {
        return await os.getBlob(name);
      } catch (e) {
        if (/digests do not match|corrupt/i.test((e as Error).message)) {
          throw new StoredBlobUnreadableError(digest, (e as Error).message, { cause: e });
        }
        throw e;
      }
    });
  }

  async deleteBlob(digest: string): Promise<boolean> {
    const { os } = await this.buckets();
    const name = JetStreamStore.blobObjectName(digest);
    const info = await this.retry('look up a blob', () => os.info(name));
    if (!info || info.deleted) return false;
    await this.retry('delete a blob', () => os.delete(name));
    return true;
  }

  async listBlobs(): Promise<BlobInfo[]> {
    const { os } = await this.buckets();
    const infos = await this.retry('list blobs', () => os.list());
    const out: BlobInfo[] = [];
    for (const i of infos) {
      if (i.deleted || !/^sha256-[0-9a-f]{64}$/.test(i.name)) continue;
      out.push({ digest: `sha256:${i.name.slice(7)}`, bytes: i.size, mtimeMs: Date.parse(i.mtime) });
    }
    return out;
  }

  async putManifest(id: string, text: string): Promise<boolean> {
    const bytes = textEncoder.encode(text);
    const max = this.nc.info?.max_payload ?? 1024 * 1024;
    // Leave room for the headers JetStream adds to a KV message.
    if (bytes.length > max - 4096) {
      throw new BankInputError(
        `manifest ${id} is ${bytes.length} bytes, over the NATS KV value limit (max_payload ${max}); keep 'extra' small`,
      );
    }
    const { kv } = await this.buckets();
    return this.retry('store a manifest', async () => {
      try {
        await kv.create(`m.${id}`, bytes);
        return true;
      } catch (e) {
        if (isWrongLastSequence(e)) return false; // already there: same id, same content
        throw e;
      }
    });
  }

  async getManifest(id: string): Promise<string | null> {
    const e = await this.kvGet(`m.${id}`);
    return e ? textDecoder.decode(e.value) : null;
  }

  async deleteManifest(id: string): Promise<void> {
    const { kv } = await this.buckets();
    await this.retry('delete a manifest', () => kv.purge(`m.${id}`));
  }

  async listManifestIds(): Promise<string[]> {
    return (await this.keys('m.')).filter((id) => /^[0-9a-f]{64}$/.test(id));
  }

  async getHead(job: string): Promise<string | null> {
    return this.pointer(`h.${job}`);
  }

  async compareAndSetHead(job: string, expected: string | null, next: string): Promise<HeadCasResult> {
    const { kv } = await this.buckets();
    const key = `h.${job}`;
    return this.retry(`advance the head of '${job}'`, async (): Promise<HeadCasResult> => {
      const e = await this.kvGetOnce(kv, key);
      const actual = e ? textDecoder.decode(e.value).trim() : null;
      // Already at `next`: an earlier attempt whose reply was lost in a reconnect did land.
      if (actual === next) return { ok: true };
      if (actual !== expected) return { ok: false, actual };
      try {
        if (e === null) await kv.create(key, textEncoder.encode(next));
        else await kv.update(key, textEncoder.encode(next), e.revision);
        return { ok: true };
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
        const now = await this.kvGetOnce(kv, key);
        const winner = now ? textDecoder.decode(now.value).trim() : null;
        return winner === next ? { ok: true } : { ok: false, actual: winner };
      }
    });
  }

  async listHeads(): Promise<Map<string, string>> {
    return this.pointers('h.');
  }

  async getTag(tag: string): Promise<string | null> {
    return this.pointer(`t.${tag}`);
  }

  async setTag(tag: string, id: string, force: boolean): Promise<void> {
    const { kv } = await this.buckets();
    const key = `t.${tag}`;
    await this.retry(`set tag '${tag}'`, async () => {
      if (force) {
        await kv.put(key, textEncoder.encode(id));
        return;
      }
      try {
        await kv.create(key, textEncoder.encode(id));
      } catch (e) {
        if (!isWrongLastSequence(e)) throw e;
        const current = await this.pointer(key);
        if (current !== id) throw new TagExistsError(tag, current ?? '(unreadable)', id);
      }
    });
  }

  async deleteTag(tag: string): Promise<boolean> {
    const { kv } = await this.buckets();
    if ((await this.pointer(`t.${tag}`)) === null) return false;
    await this.retry(`delete tag '${tag}'`, () => kv.purge(`t.${tag}`));
    return true;
  }

  async listTags(): Promise<Map<string, string>> {
    return this.pointers('t.');
  }

  /** The connection belongs to the caller; nothing to release here. */
  async close(): Promise<void> {}

  private async pointer(key: string): Promise<string | null> {
    const e = await this.kvGet(key);
    return e ? textDecoder.decode(e.value).trim() : null;
  }

  private async pointers(prefix: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const name of (await this.keys(prefix)).sort()) {
      const id = await this.pointer(`${prefix}${name}`);
      if (id) out.set(name, id);
    }
    return out;
  }

  private async keys(prefix: string): Promise<string[]> {
    const { kv } = await this.buckets();
    return this.retry('list keys', async () => {
      const out: string[] = [];
      for await (const k of await kv.keys(`${prefix}>`)) out.push(k.slice(prefix.length));
      return out;
    });
  }

  private async kvGet(key: string): Promise<KvEntry | null> {
    const { kv } = await this.buckets();
    return this.retry('read a key', () => this.kvGetOnce(kv, key));
  }

  private async kvGetOnce(kv: KV, key: string): Promise<KvEntry | null> {
    const e = await kv.get(key);
    // A deleted or purged key reads as a marker entry: treat it as absent.
    return e && e.operation === 'PUT' ? e : null;
  }

  private async retry<T>(what: string, fn: (attempt: number) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.retryForMs;
    let delay = 100;
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn(attempt);
      } catch (e) {
        if (!isTransient(e) || this.nc.isClosed()) {
          if (e instanceof BankError || e instanceof StoredBlobUnreadableError) throw e;
          throw new BankStoreError(
            `NATS bank at ${this.location}: could not ${what}: ${(e as Error).message}`,
            {
              cause: e,
            },
          );
        }
        if (Date.now() > deadline) {
          throw new BankStoreError(
            `NATS bank at ${this.location}: could not ${what} within ${this.retryForMs} ms (last error: ${(e as Error).message}); is nats-server up with JetStream enabled?`,
            { cause: e },
          );
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 1000);
      }
    }
  }
}

function isWrongLastSequence(e: unknown): boolean {
  const err = e as { api_error?: { err_code?: number }; message?: string };
  return err?.api_error?.err_code === WRONG_LAST_SEQUENCE || /wrong last sequence/i.test(err?.message ?? '');
}

function isTransient(e: unknown): boolean {
  const err = e as { code?: string; message?: string; api_error?: { code?: number; err_code?: number } };
  if (
    err?.code &&
    ['TIMEOUT', '503', 'DISCONNECT', 'CONNECTION_REFUSED', 'REQUEST_ERROR', '408'].includes(err.code)
  ) {
    return true;
  }
  const api = err?.api_error;
  if (api && (api.code === 503 || api.err_code === 10008)) return true;
  return /timeout|temporarily unavailable|no responders|disconnect|jetstream not enabled/i.test(
    err?.message ?? '',
  );
}
