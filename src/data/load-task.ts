/**
 * Loading a task from its folder: find the file of each official split, read it (TSV, JSONL or JSON), turn
 * records into rows, apply the ATTEMPT split rule, and format rows into text-to-text examples.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataFormatError, HoldoutTooLargeError, MissingDataFileError, RecordShapeError } from './errors.js';
import { iterateJsonl, readJsonDocument } from './readers/jsonl.js';
import {
  handleMalformed,
  type MalformedPolicy,
  newReadReport,
  type ReadReport,
} from './readers/read-report.js';
import type { SourceRecord } from './readers/source-record.js';
import { iterateTsv } from './readers/tsv.js';
import { DEFAULT_SPLIT_SEED, resolveSplitRule, splitIndices } from './splits.js';
import { getTask } from './tasks/registry.js';
import {
  DEFAULT_FORMAT_OPTIONS,
  type FileCandidate,
  type FormatOptions,
  type TaskExample,
  type TaskSpec,
} from './tasks/task-spec.js';

export interface ReadOptions {
  /** 'error' (default): the first malformed record throws DataFormatError; 'skip': skip and count in `report`. */
  onMalformed?: MalformedPolicy;
  report?: ReadReport;
}

export interface LoadTaskOptions extends ReadOptions {
  format?: Partial<FormatOptions>;
  /** Seed of the validation/test halving and the training hold-out (ATTEMPT: 42). */
  splitSeed?: number;
}

/** A row of a task with where it came from. */
export interface LocatedRow<Row> {
  row: Row;
  ref: string;
}

export interface OfficialSplit<Row> {
  file: string;
  rows: LocatedRow<Row>[];
}

export interface LoadedTask {
  task: string;
  spec: TaskSpec;
  train: TaskExample[];
  validation: TaskExample[];
  test: TaskExample[];
  /** Official split -> the file it was read from. */
  files: Record<string, string>;
  report: ReadReport;
}

function findFile<Row>(
  spec: TaskSpec<Row>,
  dir: string,
  split: string,
): { file: string; candidate: FileCandidate<Row> } {
  const candidates = spec.officialSplits[split];
  if (!candidates) throw new RangeError(`task '${spec.name}' has no official split '${split}'`);
  for (const candidate of candidates) {
    const file = path.join(dir, candidate.file);
    if (fs.existsSync(file)) return { file, candidate };
  }
  throw new MissingDataFileError(
    dir,
    spec.name,
    split,
    candidates.map((c) => c.file),
  );
}

function toRowsAt<Row>(
  candidate: FileCandidate<Row>,
  rec: { file: string; line: number; value: SourceRecord['value'] },
  where: string,
  policy: MalformedPolicy,
  report: ReadReport,
): Row[] {
  try {
    return candidate.toRows(rec.value);
  } catch (cause) {
    if (!(cause instanceof RecordShapeError || cause instanceof RangeError || cause instanceof TypeError))
      throw cause;
    const expected = cause instanceof RecordShapeError ? cause.expected : 'a valid record';
    const found = cause instanceof RecordShapeError ? cause.found : cause.message;
    handleMalformed(
      new DataFormatError(rec.file, rec.line, `${where}${expected}`, found, { cause }),
      policy,
      report,
    );
    return [];
  }
}

/** Reads one official split of a task (e.g. 'train', 'validation_matched') from the task's folder. */
export function readOfficialSplit<Row = unknown>(
  task: string | TaskSpec<Row>,
  dir: string,
  split: string,
  options: ReadOptions = {},
): OfficialSplit<Row> {
  const spec = (typeof task === 'string' ? getTask(task) : task) as TaskSpec<Row>;
  const policy = options.onMalformed ?? 'error';
  const report = options.report ?? newReadReport();
  const { file, candidate } = findFile(spec, dir, split);
  const rows: LocatedRow<Row>[] = [];
  if (candidate.format === 'json') {
    const doc = readJsonDocument(file);
    let records: { path: string; value: SourceRecord['value'] }[];
    try {
      records = candidate.explode(doc);
    } catch (cause) {
      if (!(cause instanceof RecordShapeError)) throw cause;
      throw new DataFormatError(file, 1, `a ${spec.name} document: ${cause.expected}`, cause.found, {
        cause,
      });
    }
    for (const r of records) {
      // A one-line JSON document has no useful line numbers: the JSON path says where.
      for (const row of toRowsAt(
        candidate,
        { file, line: 1, value: r.value },
        `at ${r.path}: `,
        policy,
        report,
      )) {
        rows.push({ row, ref: `${file}#${r.path}` });
      }
    }
    return { file, rows };
  }
  const text = fs.readFileSync(file, 'utf8');
  const lines =
    candidate.format === 'tsv'
      ? iterateTsv(text, file, {
          header: candidate.header,
          ...(candidate.columns !== undefined ? { columns: candidate.columns } : {}),
          ...(candidate.requiredColumns !== undefined ? { requiredColumns: candidate.requiredColumns } : {}),
        })
      : iterateJsonl(text, file);
  for (const p of lines) {
    if (p.error) {
      handleMalformed(p.error, policy, report);
      continue;
    }
    const rec = p.record;
    for (const row of toRowsAt(candidate, rec, '', policy, report))
      rows.push({ row, ref: `${file}:${rec.line}` });
  }
  return { file, rows };
}

function formatRows<Row>(
  spec: TaskSpec<Row>,
  rows: readonly LocatedRow<Row>[],
  indices: readonly number[],
  format: FormatOptions,
): TaskExample[] {
  const out: TaskExample[] = [];
  for (const i of indices) {
    const r = rows[i] as LocatedRow<Row>;
    for (const ex of spec.format(r.row, format)) out.push({ task: spec.name, ref: r.ref, ...ex });
  }
  return out;
}

/**
 * Loads a task's train/validation/test examples from its folder (e.g. `glue/RTE`, `super_glue/cb`), applying
 * the task's ATTEMPT split rule. Training rows with several answers (ReCoRD) are duplicated per answer unless
 * `format.duplicatePerAnswer` is false; evaluation rows never are (one prediction per query, max over answers).
 */
export function loadTask(task: string, dir: string, options: LoadTaskOptions = {}): LoadedTask {
  const spec = getTask(task) as TaskSpec<unknown>;
  const report = options.report ?? newReadReport();
  const read: ReadOptions = { onMalformed: options.onMalformed ?? 'error', report };
  const base: FormatOptions = { ...DEFAULT_FORMAT_OPTIONS, ...options.format };
  const trainFormat: FormatOptions = {
    ...base,
    duplicatePerAnswer: options.format?.duplicatePerAnswer ?? true,
  };
  const evalFormat: FormatOptions = { ...base, duplicatePerAnswer: false };
  const seed = options.splitSeed ?? DEFAULT_SPLIT_SEED;
  const files: Record<string, string> = {};
  const readSplit = (split: string) => {
    const s = readOfficialSplit(spec, dir, split, read);
    files[split] = s.file;
    return s;
  };
  const groups = (rows: readonly LocatedRow<unknown>[]) =>
    spec.groupOf ? rows.map((r) => (spec.groupOf as (row: unknown) => string)(r.row)) : undefined;

  const train = readSplit(spec.splitRule.train);
  const validation = readSplit(spec.splitRule.validation);
  const rule = resolveSplitRule(spec.splitRule, train.rows.length);
  if (rule.kind === 'fixed') {
    const test = readSplit(rule.test);
    return {
      task: spec.name,
      spec,
      train: formatRows(spec, train.rows, range(train.rows.length), trainFormat),
      validation: formatRows(spec, validation.rows, range(validation.rows.length), evalFormat),
      test: formatRows(spec, test.rows, range(test.rows.length), evalFormat),
      files,
      report,
    };
  }
  if (rule.kind === 'holdout-train' && train.rows.length <= rule.holdout)
    throw new HoldoutTooLargeError(spec.name, train.file, train.rows.length, rule.holdout);
  const trainGroups = groups(train.rows);
  const validationGroups = groups(validation.rows);
  const idx = splitIndices(
    rule,
    { train: train.rows.length, validation: validation.rows.length },
    {
      seed,
      salt: spec.name,
      ...(trainGroups ? { trainGroups } : {}),
      ...(validationGroups ? { validationGroups } : {}),
    },
  );
  const [valSource, testSource] =
    rule.kind === 'halve-validation' ? [validation, validation] : [train, validation];
  return {
    task: spec.name,
    spec,
    train: formatRows(spec, train.rows, idx.train, trainFormat),
    validation: formatRows(spec, valSource.rows, idx.validation, evalFormat),
    test: formatRows(spec, testSource.rows, idx.test, evalFormat),
    files,
    report,
  };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
