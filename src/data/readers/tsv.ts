import { DataFormatError } from '../errors.js';
import { handleMalformed, type MalformedPolicy, newReadReport, type ReadReport } from './read-report.js';
import type { SourceRecord } from './source-record.js';

export interface TsvOptions {
  /**
   * `true`: the first line names the columns; records are keyed by those names and every line must have that many
   * columns. `false`: no header; records are keyed '0', '1', ... and `columns` is required.
   */
  header: boolean;
  /** Column count when there is no header (CoLA: 4). With a header, an optional check of the header's length. */
  columns?: number;
  /** Header names that must be present (checked on the header line). */
  requiredColumns?: readonly string[];
  onMalformed?: MalformedPolicy;
  report?: ReadReport;
}

/** Splits text into lines, keeping 1-based numbering, without the final empty lines. */
export function splitLines(text: string): string[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as string;
    if (l.endsWith('\r')) lines[i] = l.slice(0, -1);
  }
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function preview(line: string): string {
  const shown = line.length > 60 ? `${line.slice(0, 57)}...` : line;
  return JSON.stringify(shown);
}

/** A parsed record, or the reason a line is malformed, in file order. */
export type ParsedLine =
  | { record: SourceRecord; error?: undefined }
  | { record?: undefined; error: DataFormatError };

/**
 * Walks TSV text line by line, yielding each record or each malformed line's error in file order (so a caller
 * that validates fields too reports the first bad line first). A wrong header throws: nothing else can be read.
 */
export function* iterateTsv(
  text: string,
  file: string,
  options: Pick<TsvOptions, 'header' | 'columns' | 'requiredColumns'>,
): Generator<ParsedLine> {
  const lines = splitLines(text);
  let names: string[];
  let first = 0;
  if (options.header) {
    if (lines.length === 0) throw new DataFormatError(file, 1, 'a header line', 'an empty file');
    names = (lines[0] as string).split('\t').map((s) => s.trim());
    first = 1;
    const missing = (options.requiredColumns ?? []).filter((c) => !names.includes(c));
    if (missing.length > 0 || (options.columns !== undefined && names.length !== options.columns)) {
      // A wrong header means the whole file has another layout: never skippable.
      const want = options.requiredColumns?.join(', ') ?? `${options.columns} columns`;
      throw new DataFormatError(
        file,
        1,
        `a header with columns ${want}`,
        `${names.length} columns ${preview(lines[0] as string)}`,
      );
    }
  } else {
    if (options.columns === undefined)
      throw new TypeError('parseTsv: columns is required when header is false');
    names = Array.from({ length: options.columns }, (_, i) => String(i));
  }
  for (let i = first; i < lines.length; i++) {
    const line = lines[i] as string;
    const cells = line.split('\t');
    if (cells.length !== names.length) {
      yield {
        error: new DataFormatError(
          file,
          i + 1,
          `${names.length} tab-separated columns`,
          `${cells.length} ${cells.length === 1 ? 'column' : 'columns'} ${preview(line)}`,
        ),
      };
      continue;
    }
    const value: Record<string, string> = {};
    for (let c = 0; c < names.length; c++) value[names[c] as string] = cells[c] as string;
    yield { record: { file, line: i + 1, value } };
  }
}

/** Parses TSV text (already read) into records. `file` is only used in messages. */
export function parseTsv(text: string, file: string, options: TsvOptions): SourceRecord[] {
  const policy = options.onMalformed ?? 'error';
  const report = options.report ?? newReadReport();
  const out: SourceRecord[] = [];
  for (const p of iterateTsv(text, file, options)) {
    if (p.error) handleMalformed(p.error, policy, report);
    else out.push(p.record);
  }
  return out;
}
