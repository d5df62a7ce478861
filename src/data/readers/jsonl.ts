/**
 * Readers for JSON Lines (Hugging Face `Dataset.to_json`, SuperGLUE's original files) and whole-file JSON (SQuAD).
 */
import * as fs from 'node:fs';
import { DataFormatError } from '../errors.js';
import { handleMalformed, type MalformedPolicy, newReadReport, type ReadReport } from './read-report.js';
import type { SourceRecord } from './source-record.js';
import { type ParsedLine, splitLines } from './tsv.js';

export interface JsonlOptions {
  onMalformed?: MalformedPolicy;
  report?: ReadReport;
}

function snippet(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s);
}

/** Walks JSONL text, yielding each object or each bad line's error in file order. Blank lines are allowed. */
export function* iterateJsonl(text: string, file: string): Generator<ParsedLine> {
  const lines = splitLines(text);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (cause) {
      yield {
        error: new DataFormatError(file, i + 1, 'one JSON object per line', `invalid JSON ${snippet(line)}`, {
          cause,
        }),
      };
      continue;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      yield { error: new DataFormatError(file, i + 1, 'a JSON object', snippet(line)) };
      continue;
    }
    yield { record: { file, line: i + 1, value: v as Record<string, unknown> } };
  }
}

/** Parses JSONL text: one JSON object per non-empty line. */
export function parseJsonl(text: string, file: string, options: JsonlOptions = {}): SourceRecord[] {
  const policy = options.onMalformed ?? 'error';
  const report = options.report ?? newReadReport();
  const out: SourceRecord[] = [];
  for (const p of iterateJsonl(text, file)) {
    if (p.error) handleMalformed(p.error, policy, report);
    else out.push(p.record);
  }
  return out;
}

/** Line (1-based) of a character offset, for JSON.parse errors that report a position. */
function lineOfOffset(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Parses a whole JSON document; a syntax error is a DataFormatError at the line where parsing failed. */
export function parseJsonDocument(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    const msg = cause instanceof Error ? cause.message : String(cause);
    const m = /position (\d+)/.exec(msg);
    const lc = /line (\d+)/.exec(msg);
    const line = m ? lineOfOffset(text, Number(m[1])) : lc ? Number(lc[1]) : 1;
    throw new DataFormatError(file, line, 'a valid JSON document', `a syntax error (${msg})`, { cause });
  }
}

export function readJsonDocument(file: string): unknown {
  return parseJsonDocument(fs.readFileSync(file, 'utf8'), file);
}
