/**
 * The shape every `promptmesh` subcommand has. Each subcommand lives in `src/cli/commands/<name>.ts`,
 * exports one `CliCommand`, and is listed in `src/cli/commands/index.ts`.
 */
export interface CliOption {
  /** Long flag name without dashes, e.g. `checkpoint` for `--checkpoint`. */
  name: string;
  type: 'string' | 'boolean';
  short?: string;
  /** Placeholder shown in help, e.g. `DIR`. */
  value?: string;
  description: string;
  default?: string | boolean;
  multiple?: boolean;
}

export interface CliContext {
  /** Parsed option values keyed by long name. */
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export interface CliCommand {
  /** Words that select the command, e.g. ['model', 'run'] for `promptmesh model run`. */
  path: string[];
  summary: string;
  /** Usage line after `promptmesh <path>`, e.g. `--checkpoint DIR [--json]`. */
  usage: string;
  /** Longer text: what it does, with examples. */
  description?: string;
  examples?: string[];
  options: CliOption[];
  /** Allow positional arguments (e.g. the text for `tokenize`). */
  positionals?: { name: string; description: string; min?: number; max?: number };
  /** Returns the process exit code. Throw a UsageError for bad arguments. */
  run(ctx: CliContext): Promise<number>;
}

/** Bad command-line input: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Helpers for reading typed option values. */
export function optString(ctx: CliContext, name: string): string | undefined {
  const v = ctx.values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new UsageError(`--${name} expects a value`);
  return v;
}

export function requireString(ctx: CliContext, name: string): string {
  const v = optString(ctx, name);
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

export function optBool(ctx: CliContext, name: string): boolean {
  return ctx.values[name] === true;
}

export function optInt(ctx: CliContext, name: string, fallback?: number): number | undefined {
  const v = optString(ctx, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} expects an integer, got '${v}'`);
  return n;
}

export function optNumber(ctx: CliContext, name: string, fallback?: number): number | undefined {
  const v = optString(ctx, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} expects a number, got '${v}'`);
  return n;
}

/** Parses a comma-separated list of integers such as `13,7,1`. */
export function parseIntList(flag: string, text: string): number[] {
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const out = parts.map((p) => Number(p));
  const bad = parts.findIndex((p, i) => !Number.isInteger(out[i]) || p === '');
  if (bad >= 0) throw new UsageError(`--${flag}: '${parts[bad]}' is not an integer (expected e.g. 13,7,1)`);
  return out;
}
