/**
 * What a task is: where its files are and how they look, how a record becomes rows, how a row becomes a
 * (source, target) pair, its label words, its metrics and its split rule.
 */

import type { MetricName } from '../metrics/metric-name.js';
import type { RawRecord } from '../readers/fields.js';
import type { SplitRule } from '../splits.js';

/** One text-to-text example as produced by a task's formatter. */
export interface FormattedExample {
  source: string;
  target: string;
  /** Every acceptable answer, for generation metrics with a max over golds (SQuAD, ReCoRD). */
  answers?: string[];
  /** Grouping key for per-group metrics (MultiRC: the question). */
  group?: string;
}

/** A formatted example of a named task, with the record it came from (`file:line`) for debugging. */
export interface TaskExample extends FormattedExample {
  task: string;
  ref: string;
}

export interface FormatOptions {
  /** STS-B target: 'grid' rounds to the 0.2 grid (intended); 'released' rounds to 1 decimal (ATTEMPT's code). */
  stsbRounding: 'grid' | 'released';
  /** Add the task name in front of the source (ATTEMPT's `add_prefix`, on by default). */
  addPrefix: boolean;
  /** Training rows with several answers (ReCoRD) become one example per answer, as in T5/ATTEMPT. */
  duplicatePerAnswer: boolean;
}

export const DEFAULT_FORMAT_OPTIONS: FormatOptions = Object.freeze({
  stsbRounding: 'grid',
  addPrefix: true,
  duplicatePerAnswer: false,
});

/** How one file layout is read and turned into task rows. */
export type FileCandidate<Row> =
  | {
      file: string;
      format: 'tsv';
      header: boolean;
      columns?: number;
      requiredColumns?: readonly string[];
      toRows: (value: RawRecord) => Row[];
    }
  | { file: string; format: 'jsonl'; toRows: (value: RawRecord) => Row[] }
  | {
      file: string;
      format: 'json';
      /** Splits the document into records, each with a JSON path used in error messages. */
      explode: (doc: unknown) => { path: string; value: RawRecord }[];
      toRows: (value: RawRecord) => Row[];
    };

export type Benchmark = 'glue' | 'superglue' | 'squad' | 'demo';

export interface TaskSpec<Row = unknown> {
  /** The name used in configs and as the source prefix, e.g. 'mnli', 'superglue-cb', 'squad'. */
  name: string;
  benchmark: Benchmark;
  description: string;
  /**
   * Official split name -> accepted files, in order of preference; the first that exists is read. Split names
   * follow Hugging Face datasets ('train', 'validation', 'validation_matched', ...).
   */
  officialSplits: Readonly<Record<string, readonly FileCandidate<Row>[]>>;
  splitRule: SplitRule;
  /** Label words (target strings) of a classification task, in label-index order; absent for generation. */
  labels?: readonly string[];
  metrics: readonly MetricName[];
  format(row: Row, options: FormatOptions): FormattedExample[];
  /** Key that keeps rows together when a split is halved (MultiRC: all answers of a question). */
  groupOf?: (row: Row) => string;
}
