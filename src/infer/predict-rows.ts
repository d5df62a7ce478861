/**
 * Rows to predict, as JSON objects (one per JSONL line, or one request body):
 * - `{"task": T, "input": "text"}`: the source text as the model sees it (the task's formatting, prefix included);
 * - `{"task": T, "input": {...fields}}` or `{"task": T, ...fields}`: the task's own record layout (the fields of its
 *   JSONL files, e.g. `sentence1`/`sentence2` for RTE), formatted by the task as in training. The label may be left
 *   out; when given, it is returned as `target` beside the prediction.
 */
import { RecordShapeError } from '../data/errors.js';
import { getTask, resolveTaskName } from '../data/tasks/registry.js';
import { DEFAULT_FORMAT_OPTIONS, type TaskSpec } from '../data/tasks/task-spec.js';
import type { PredictInput } from './predict-engine.js';

export interface ParsedRow extends PredictInput {
  /** The gold target, when the row came in the task's layout with its label. */
  target?: string;
  /** Caller's id, echoed back. */
  id?: unknown;
  /** Where the row came from (file:line), for messages. */
  where: string;
}

/** A row is not a JSON object of a known shape; `where` is file:line or 'request body'. */
export class PredictRowError extends Error {
  override name = 'PredictRowError';
  constructor(
    readonly where: string,
    readonly reason: string,
  ) {
    super(`${where}: ${reason}`);
  }
}

/** Turns one parsed JSON value into a row (task name checked against the registry, not the served set). */
export function parsePredictRow(value: unknown, where: string): ParsedRow {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new PredictRowError(where, 'expected a JSON object with "task" and "input"');
  const rec = value as Record<string, unknown>;
  if (typeof rec.task !== 'string' || rec.task === '')
    throw new PredictRowError(where, 'field "task" must be a non-empty string');
  const task = rec.task;
  const id = rec.id;
  const withId = (r: Omit<ParsedRow, 'where'>): ParsedRow => ({
    ...r,
    ...(id !== undefined ? { id } : {}),
    where,
  });
  if (typeof rec.input === 'string') return withId({ task, source: rec.input });
  let fields: Record<string, unknown>;
  if (rec.input !== undefined) {
    if (typeof rec.input !== 'object' || rec.input === null || Array.isArray(rec.input))
      throw new PredictRowError(where, 'field "input" must be a string or an object of the task\'s fields');
    fields = rec.input as Record<string, unknown>;
  } else {
    const { task: _t, id: _i, ...rest } = rec;
    fields = rest;
    if (Object.keys(fields).length === 0)
      throw new PredictRowError(where, 'no "input": give the source text or the task\'s fields');
  }
  const canonical = resolveTaskName(task);
  if (canonical === undefined) return withId({ task, source: '' }); // the engine names the served tasks
  return withId({ task, ...formatFields(getTask(canonical), fields, where) });
}

/** Formats a record in the task's JSONL layout (its first JSONL file layout), as training formats it. */
function formatFields(
  spec: TaskSpec<unknown>,
  fields: Record<string, unknown>,
  where: string,
): { source: string; target?: string } {
  const layout = Object.values(spec.officialSplits)
    .flat()
    .find((c) => c.format === 'jsonl');
  if (!layout)
    throw new PredictRowError(where, `task '${spec.name}' has no JSONL layout: give "input" as text`);
  const labelled = Object.hasOwn(fields, 'label');
  const attempt = (rec: Record<string, unknown>) => {
    const rows = layout.toRows(rec);
    const ex = rows[0] ? spec.format(rows[0], DEFAULT_FORMAT_OPTIONS)[0] : undefined;
    if (!ex) throw new PredictRowError(where, `the record gives no example of task '${spec.name}'`);
    return ex;
  };
  try {
    const ex = attempt(fields);
    return labelled ? { source: ex.source, target: ex.target } : { source: ex.source };
  } catch (e) {
    if (!(e instanceof RecordShapeError)) throw e;
    if (!labelled) {
      // Unlabelled input: any label formats the same source.
      const placeholder = spec.labels ? 0 : 'unknown';
      try {
        return { source: attempt({ ...fields, label: placeholder }).source };
      } catch {
        // report the first error
      }
    }
    throw new PredictRowError(where, `not a record of task '${spec.name}': ${e.message}`);
  }
}

/** Parses JSONL text; a malformed line is a PredictRowError naming `file:line`. Blank lines are skipped. */
export function parsePredictJsonl(text: string, file: string): ParsedRow[] {
  const out: ParsedRow[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${file}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new PredictRowError(where, `not valid JSON (${(e as Error).message})`);
    }
    out.push(parsePredictRow(value, where));
  });
  return out;
}
