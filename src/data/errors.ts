/**
 * Errors of the data layer. One class per failure a caller handles differently: a bad record (fix or skip the
 * data), a missing file (point at the right folder), an unknown task (fix the name), a cursor from another
 * mixture (start fresh or fix the config).
 */

/** A record in a data file does not have the expected shape. `file` and `line` (1-based) locate it. */
export class DataFormatError extends Error {
  override name = 'DataFormatError';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly expected: string,
    readonly found: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${file}:${line}: expected ${expected}, found ${found}. Fix the record, or load with ` +
        `onMalformed: 'skip' to skip and count such records.`,
      options,
    );
  }
}

/** A task's data file is not where it should be. Lists every file name that would have been accepted. */
export class MissingDataFileError extends Error {
  override name = 'MissingDataFileError';
  constructor(
    readonly dir: string,
    readonly task: string,
    readonly split: string,
    readonly expectedFiles: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(
      `no ${split} file for task '${task}' in ${dir}: expected one of ${expectedFiles.join(', ')}. ` +
        `Point the loader at the task's own folder (e.g. glue/RTE).`,
      options,
    );
  }
}

/** A task's training file is too small for the rows its split rule holds out for validation. */
export class HoldoutTooLargeError extends Error {
  override name = 'HoldoutTooLargeError';
  constructor(
    readonly task: string,
    readonly file: string,
    readonly rows: number,
    readonly holdout: number,
  ) {
    super(
      `task '${task}': ${file} has ${rows} training row(s), but the task's split holds out ${holdout} of them for ` +
        `validation (ATTEMPT's split of a large task; the official dev file becomes the test split): holdout of ` +
        `${holdout} needs more than ${rows} training rows. Use the full training file.`,
    );
  }
}

/** A task name that is not registered. Lists the registered names. */
export class UnknownTaskError extends Error {
  override name = 'UnknownTaskError';
  constructor(
    readonly task: string,
    readonly knownTasks: readonly string[],
  ) {
    super(`unknown task '${task}'. Known tasks: ${knownTasks.join(', ')}`);
  }
}

/** A sampler cursor that does not belong to the sampler it is restored into (other tasks, sizes or options). */
export class CursorMismatchError extends Error {
  override name = 'CursorMismatchError';
  constructor(
    readonly field: string,
    readonly expected: string,
    readonly found: string,
  ) {
    super(
      `sampler cursor does not match this mixture: ${field} is ${found} in the cursor but ${expected} here. ` +
        `Restore with the same tasks, sizes and mixing options, or start from step 0.`,
    );
  }
}

/**
 * Thrown by field accessors while normalising one record; the reader turns it into a DataFormatError with the
 * file and line, so task code never has to know where the record came from.
 */
export class RecordShapeError extends Error {
  override name = 'RecordShapeError';
  constructor(
    readonly expected: string,
    readonly found: string,
  ) {
    super(`expected ${expected}, found ${found}`);
  }
}
