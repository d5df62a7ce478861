/**
 * Typed field accessors used while turning a raw record (a TSV row mapped by header, a JSON object) into a
 * task's row. They throw RecordShapeError with what was expected and what was found; the loader adds file:line.
 */
import { RecordShapeError } from '../errors.js';

export type RawRecord = Readonly<Record<string, unknown>>;

/** Short printable form of a found value for error messages. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing (field missing)';
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export function field(r: RawRecord, key: string): unknown {
  return Object.hasOwn(r, key) ? r[key] : undefined;
}

export function str(r: RawRecord, key: string): string {
  const v = field(r, key);
  if (typeof v !== 'string') throw new RecordShapeError(`field '${key}' to be a string`, describeValue(v));
  return v;
}

export function obj(r: RawRecord, key: string): RawRecord {
  const v = field(r, key);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new RecordShapeError(`field '${key}' to be an object`, describeValue(v));
  }
  return v as RawRecord;
}

export function arr(r: RawRecord, key: string): unknown[] {
  const v = field(r, key);
  if (!Array.isArray(v)) throw new RecordShapeError(`field '${key}' to be an array`, describeValue(v));
  return v;
}

export function strArray(r: RawRecord, key: string): string[] {
  const a = arr(r, key);
  for (const x of a) {
    if (typeof x !== 'string')
      throw new RecordShapeError(`field '${key}' to be an array of strings`, describeValue(a));
  }
  return a as string[];
}

/** An integer, given as a JSON number or as a decimal string (TSV cells). */
export function int(r: RawRecord, key: string): number {
  const v = field(r, key);
  const n =
    typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : Number.NaN;
  if (!Number.isInteger(n)) throw new RecordShapeError(`field '${key}' to be an integer`, describeValue(v));
  return n;
}

/** A finite number, given as a JSON number or a numeric string. */
export function num(r: RawRecord, key: string): number {
  const v = field(r, key);
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN;
  if (!Number.isFinite(n)) throw new RecordShapeError(`field '${key}' to be a number`, describeValue(v));
  return n;
}

/**
 * A class label as its index in `names`. Accepts the index (number or digit string, as in Hugging Face exports
 * and some TSVs), the class name (as in the original TSV/JSONL files), or a boolean for two-class tasks whose
 * names are ['False', 'True'] (SuperGLUE's original files).
 */
export function label(r: RawRecord, key: string, names: readonly string[]): number {
  const v = field(r, key);
  let i = -1;
  if (typeof v === 'number' && Number.isInteger(v)) i = v;
  else if (typeof v === 'boolean' && names.length === 2) i = v ? 1 : 0;
  else if (typeof v === 'string') {
    const t = v.trim();
    i = names.indexOf(t);
    if (i < 0 && /^\d+$/.test(t)) i = Number(t);
    if (i < 0 && names.length === 2) {
      const lower = t.toLowerCase();
      if (lower === 'true') i = 1;
      else if (lower === 'false') i = 0;
    }
  }
  if (i < 0 || i >= names.length) {
    const allowed = names.map((n, k) => `${k} (${n})`).join(' | ');
    throw new RecordShapeError(`field '${key}' to be a label: ${allowed}`, describeValue(v));
  }
  return i;
}
