/**
 * What a bank needs from storage. Stores are dumb: they keep bytes under names and offer one atomic
 * compare-and-set (the head of a job). Hashing, verification and manifest rules live in `PromptBank`, so both
 * stores behave the same.
 */

export interface BlobInfo {
  /** `sha256:<hex>` */
  digest: string;
  bytes: number;
  /** When the blob was written (ms since the epoch), for gc's grace period; undefined when unknown. */
  mtimeMs?: number;
}

export type HeadCasResult = { ok: true } | { ok: false; actual: string | null };

export interface BankStore {
  /** Where the store lives, for messages: a directory path or `nats://host:port (bucket prefix p)`. */
  readonly location: string;

  hasBlob(digest: string): Promise<boolean>;
  /** Stores bytes under their digest. Idempotent. Visible to readers only once complete. */
  putBlob(digest: string, data: Uint8Array): Promise<void>;
  /** The stored bytes, or null when absent. Throws `StoredBlobUnreadableError` when the store itself sees damage. */
  getBlob(digest: string): Promise<Uint8Array | null>;
  deleteBlob(digest: string): Promise<boolean>;
  listBlobs(): Promise<BlobInfo[]>;

  /** Stores a manifest's text under its id. Returns false when one was already there (same id = same content). */
  putManifest(id: string, text: string): Promise<boolean>;
  getManifest(id: string): Promise<string | null>;
  deleteManifest(id: string): Promise<void>;
  listManifestIds(): Promise<string[]>;

  getHead(job: string): Promise<string | null>;
  /**
   * Atomically: if the head of `job` is `expected` (null: no head yet), set it to `next`. Otherwise change
   * nothing and report the actual head. Must hold across processes and hosts sharing the store.
   */
  compareAndSetHead(job: string, expected: string | null, next: string): Promise<HeadCasResult>;
  listHeads(): Promise<Map<string, string>>;

  getTag(tag: string): Promise<string | null>;
  /** Creates a tag; when it exists and names another version, moves it only with `force` (else TagExistsError). */
  setTag(tag: string, id: string, force: boolean): Promise<void>;
  deleteTag(tag: string): Promise<boolean>;
  listTags(): Promise<Map<string, string>>;

  close(): Promise<void>;
}

/** The store saw the blob's bytes were damaged before handing them out (e.g. a NATS object digest mismatch). */
export class StoredBlobUnreadableError extends Error {
  override name = 'StoredBlobUnreadableError';
  constructor(
    readonly digest: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`blob ${digest} cannot be read intact: ${detail}`, options);
  }
}
