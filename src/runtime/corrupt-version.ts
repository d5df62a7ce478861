import { CorruptBlobError } from '../bank/index.js';
import type { TensorMap } from './replica-state.js';
import type { RuntimeBank } from './runtime-bank.js';

/**
 * A bank version the job has to restore (the version it resumes from, or a stage's inputs) whose blob fails its
 * digest check. A lost worker or a NATS hiccup heals by retrying; these bytes never do, so whoever meets this
 * error stops the job at once instead of re-forming generations until the failure budget runs out.
 */
export class CorruptVersionError extends Error {
  override name = 'CorruptVersionError';
  constructor(
    readonly job: string,
    readonly version: string,
    /** What the job wanted the version for, e.g. 'the version job demo resumes from'. */
    readonly role: string,
    readonly blob: CorruptBlobError,
    /** The version's parent, when its manifest could be read: usually the nearest version to resume from. */
    readonly parent: string | null | undefined,
  ) {
    const found = blob.actual ? `the stored bytes hash to ${blob.actual}` : blob.detail;
    const parentHint = parent ? `, e.g. its parent: --from ${parent.slice(0, 12)}` : '';
    super(
      `bank version ${version.slice(0, 12)} (${role}) is corrupt: tensor '${blob.tensor}' fails its digest ` +
        `check (the manifest names ${blob.digest}, ${found}). Retrying cannot fix this. Resume from another ` +
        `version: list them with 'promptmesh bank ls --job ${job}', check one with 'promptmesh bank show ` +
        `VERSION --verify', and start the coordinator with --from VERSION${parentHint}; or restore the blob ` +
        'from a backup.',
      { cause: blob },
    );
  }
}

/**
 * Loads a version the job restores, turning a digest failure into a CorruptVersionError (every other failure,
 * e.g. a store that is briefly unreachable, passes through unchanged and stays retryable).
 */
export async function loadForRestore(
  bank: RuntimeBank,
  job: string,
  version: string,
  role: string,
): Promise<TensorMap> {
  try {
    return await bank.load(version);
  } catch (e) {
    if (!(e instanceof CorruptBlobError)) throw e;
    const parent = await bank.manifest(version).then(
      (m) => m.parent,
      () => undefined,
    );
    throw new CorruptVersionError(job, version, role, e, parent);
  }
}
