import type { RawRecord } from './fields.js';

/** One record read from a file, with where it came from (1-based line) for error messages. */
export interface SourceRecord {
  file: string;
  line: number;
  value: RawRecord;
}
