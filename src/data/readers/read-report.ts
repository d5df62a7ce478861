import type { DataFormatError } from '../errors.js';

/** What to do with a malformed record: stop with a DataFormatError (default), or skip it and count it. */
export type MalformedPolicy = 'error' | 'skip';

/** Counts of skipped records, filled in when `onMalformed: 'skip'`. */
export interface ReadReport {
  /** Total skipped records. */
  skipped: number;
  /** Skipped records per file. */
  skippedByFile: Record<string, number>;
  /** The first few skip reasons (at most 20), so the user can see what kind of damage it was. */
  examples: DataFormatError[];
}

export function newReadReport(): ReadReport {
  return { skipped: 0, skippedByFile: {}, examples: [] };
}

/** Applies the policy to one malformed record: rethrows, or records it in the report. */
export function handleMalformed(err: DataFormatError, policy: MalformedPolicy, report: ReadReport): void {
  if (policy === 'error') throw err;
  report.skipped++;
  report.skippedByFile[err.file] = (report.skippedByFile[err.file] ?? 0) + 1;
  if (report.examples.length < 20) report.examples.push(err);
}
