/**
 * One error class per failure a caller handles differently. Every message says what was wrong, where
 * (job, version, tensor, digest, file) and what to do about it.
 */

/** Base class, so callers can catch every bank failure at once. */
export class BankError extends Error {
  override name = 'BankError';
}

/** Bad arguments to a bank operation (a job or tag name, a tensor whose data does not fit its shape, ...). */
export class BankInputError extends BankError {
  override name = 'BankInputError';
}

/**
 * The head moved between reading it and committing: another writer committed first. Nothing of this commit is
 * visible. Re-read the head, rebase (or redo the step) and commit again.
 */
export class BankConflictError extends BankError {
  override name = 'BankConflictError';
  constructor(
    readonly job: string,
    /** The head this commit expected (its parent, unless `expectHead` was given). */
    readonly expected: string | null,
    /** The head found instead. */
    readonly actual: string | null,
    /** The version this commit would have created. */
    readonly attempted: string,
    options?: { cause?: unknown },
  ) {
    super(
      `bank conflict on job '${job}': expected head ${expected ?? '(none)'} but it is ${actual ?? '(none)'}; ` +
        `version ${attempted} was not committed. Re-read the head and commit again on top of it.`,
      options,
    );
  }
}

/** A blob's bytes do not hash to the digest its manifest names: the data is never returned. */
export class CorruptBlobError extends BankError {
  override name = 'CorruptBlobError';
  /** The digest of the bytes the store holds, when they could be read. */
  readonly actual: string | undefined;
  constructor(
    readonly version: string,
    readonly tensor: string,
    readonly digest: string,
    readonly detail: string,
    options?: { cause?: unknown; actual?: string; kind?: 'tensor' | 'attachment' },
  ) {
    super(
      `corrupt blob for ${options?.kind ?? 'tensor'} '${tensor}' of version ${version}: expected ${digest}, ${detail}. ` +
        'Restore the blob from a backup or an export, or re-commit the version.',
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.actual = options?.actual;
  }
}

/** A manifest names a blob the store does not have. */
export class MissingBlobError extends BankError {
  override name = 'MissingBlobError';
  constructor(
    readonly version: string,
    readonly tensor: string,
    readonly digest: string,
    kind: 'tensor' | 'attachment' = 'tensor',
  ) {
    super(`blob ${digest} for ${kind} '${tensor}' of version ${version} is missing from the store`);
  }
}

/** No version matches an id, prefix or tag. */
export class UnknownVersionError extends BankError {
  override name = 'UnknownVersionError';
  constructor(
    readonly ref: string,
    where: string,
  ) {
    super(
      `no version '${ref}' in ${where} (give a version id, a unique id prefix of at least 4 hex digits, or a tag)`,
    );
  }
}

/** An id prefix matches more than one version. */
export class AmbiguousVersionError extends BankError {
  override name = 'AmbiguousVersionError';
  constructor(
    readonly ref: string,
    readonly candidates: string[],
  ) {
    super(
      `version prefix '${ref}' is ambiguous: it matches ${candidates.slice(0, 5).join(', ')}` +
        `${candidates.length > 5 ? ` and ${candidates.length - 5} more` : ''}; give more digits`,
    );
  }
}

/** A manifest cannot be read: truncated, not JSON, or not a valid manifest. */
export class InvalidManifestError extends BankError {
  override name = 'InvalidManifestError';
  constructor(
    readonly id: string,
    readonly where: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`manifest ${id} (${where}) is invalid: ${reason}`, options);
  }
}

/** A head or tag points at a version whose manifest does not exist (or cannot be read). */
export class MissingManifestError extends BankError {
  override name = 'MissingManifestError';
  constructor(
    readonly id: string,
    readonly referrer: string,
    readonly reason = 'it does not exist',
    options?: { cause?: unknown },
  ) {
    super(
      `${referrer} points at version ${id}, but its manifest cannot be read: ${reason}. ` +
        'Repair the manifest, or point the head at an earlier version.',
      options,
    );
  }
}

/** A tensor's shape does not fit the backbone (import, compose). */
export class ShapeMismatchError extends BankError {
  override name = 'ShapeMismatchError';
  constructor(
    readonly tensor: string,
    readonly actual: number[],
    readonly expected: number[] | string,
    where: string,
  ) {
    super(
      `tensor '${tensor}' in ${where} has shape [${actual.join(', ')}], but the backbone expects ` +
        `${typeof expected === 'string' ? expected : `[${expected.join(', ')}]`}`,
    );
  }
}

/** A tag already names another version (move it with `force`). */
export class TagExistsError extends BankError {
  override name = 'TagExistsError';
  constructor(
    readonly tag: string,
    readonly current: string,
    readonly requested: string,
  ) {
    super(`tag '${tag}' already names version ${current}; pass force to move it to ${requested}`);
  }
}

/** The head lock of the directory store stayed held past the timeout by a live writer. */
export class BankLockTimeoutError extends BankError {
  override name = 'BankLockTimeoutError';
  constructor(
    readonly lockFile: string,
    readonly holder: string,
    timeoutMs: number,
  ) {
    super(
      `could not take the bank lock ${lockFile} within ${timeoutMs} ms; it is held by ${holder}. ` +
        'If that process is gone, delete the lock file (it is also broken automatically once stale).',
    );
  }
}

/** gc refused to run because it cannot tell which blobs some manifests reference. */
export class GcRefusedError extends BankError {
  override name = 'GcRefusedError';
}

/** A store operation failed (I/O, NATS) after its retries. */
export class BankStoreError extends BankError {
  override name = 'BankStoreError';
}
