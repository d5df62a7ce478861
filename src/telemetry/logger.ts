/**
 * One logger for every process (coordinator, worker, `up`, `serve`): JSON lines for a log pipeline, or the
 * bracketed text lines people read on a terminal.
 *
 * A JSON record carries pino's field names (`time` in epoch ms, `level` as a label, `msg`) and the fields a
 * pipeline filters on: `role`, `job`, `worker`, `generation`, `step` (and `stage`). A child logger binds fields;
 * a context function binds fields that change while the process runs (the coordinator's generation and step),
 * read when each record is written. Hand-written rather than pino: the records are small and few, and it keeps
 * the dependency list as it is.
 */

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The environment variables that set the format and level where no flag does (a pod's manifest). */
export const LOG_ENV = { format: 'PROMPTMESH_LOG_FORMAT', level: 'PROMPTMESH_LOG_LEVEL' } as const;

export interface LogFields {
  role?: string;
  job?: string;
  worker?: string;
  generation?: number;
  stage?: number;
  step?: number;
  [field: string]: unknown;
}

type LogMethod = (msg: string, fields?: LogFields) => void;

/**
 * Calling a logger as a function logs at info, so code that takes a plain `(line) => void` takes a logger too.
 */
export interface Logger extends LogMethod {
  readonly level: LogLevel;
  readonly format: LogFormat;
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  enabled(level: LogLevel): boolean;
  /** A logger that adds `fields`, and `context()`'s fields read at each record, to every record. */
  child(fields: LogFields, context?: () => LogFields): Logger;
}

export interface LoggerOptions {
  format: LogFormat;
  level: LogLevel;
  /** Where records go: one line each, newline included. */
  write: (line: string) => void;
  /** The clock for `time` (tests). */
  now?: () => number;
}

const RANK: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50 };

export function createLogger(opts: LoggerOptions, fields: LogFields = {}): Logger {
  return makeLogger(opts, fields, []);
}

function makeLogger(opts: LoggerOptions, fields: LogFields, contexts: Array<() => LogFields>): Logger {
  const now = opts.now ?? Date.now;
  const emit = (level: LogLevel, msg: string, extra?: LogFields): void => {
    if (RANK[level] < RANK[opts.level]) return;
    let all: LogFields = { ...fields };
    for (const c of contexts) all = { ...all, ...c() };
    if (extra) all = { ...all, ...extra };
    opts.write(opts.format === 'json' ? jsonRecord(now(), level, msg, all) : textRecord(level, msg, all));
  };
  const log = ((msg: string, extra?: LogFields) => emit('info', msg, extra)) as Logger;
  return Object.assign(log, {
    level: opts.level,
    format: opts.format,
    debug: (msg: string, extra?: LogFields) => emit('debug', msg, extra),
    info: (msg: string, extra?: LogFields) => emit('info', msg, extra),
    warn: (msg: string, extra?: LogFields) => emit('warn', msg, extra),
    error: (msg: string, extra?: LogFields) => emit('error', msg, extra),
    enabled: (level: LogLevel) => RANK[level] >= RANK[opts.level],
    child: (more: LogFields, context?: () => LogFields) =>
      makeLogger(opts, { ...fields, ...more }, context ? [...contexts, context] : contexts),
  });
}

function jsonRecord(time: number, level: LogLevel, msg: string, fields: LogFields): string {
  const record: Record<string, unknown> = { time, level, msg };
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || k === 'time' || k === 'level' || k === 'msg') continue;
    record[k] = v instanceof Error ? { type: v.name, message: v.message } : v;
  }
  return `${JSON.stringify(record)}\n`;
}

/** `[worker-0] msg`, `[coordinator] error: msg`: the lines `up` has always shown, with the level when not info. */
function textRecord(level: LogLevel, msg: string, fields: LogFields): string {
  const who = fields.worker ?? fields.role;
  const prefix = who === undefined ? '' : `[${String(who)}] `;
  return `${prefix}${level === 'info' ? '' : `${level}: `}${msg}\n`;
}

/**
 * The format and level from a flag, else the environment, else the default: text on a terminal, JSON lines
 * anywhere else (a pod, a file, a pipe to a log shipper). `auto` asks for the default explicitly.
 */
export function resolveLogOptions(
  flags: { format?: string | undefined; level?: string | undefined },
  isTTY: boolean,
  env: NodeJS.ProcessEnv = process.env,
): { format: LogFormat; level: LogLevel } {
  const rawFormat = flags.format ?? env[LOG_ENV.format] ?? 'auto';
  const rawLevel = flags.level ?? env[LOG_ENV.level] ?? 'info';
  const from = (flag: string | undefined, name: string) => (flag === undefined ? ` (from ${name})` : '');
  if (rawFormat !== 'auto' && !(LOG_FORMATS as readonly string[]).includes(rawFormat)) {
    throw new LogOptionError(
      `--log-format expects text, json or auto, got '${rawFormat}'${from(flags.format, LOG_ENV.format)}`,
    );
  }
  if (!(LOG_LEVELS as readonly string[]).includes(rawLevel)) {
    throw new LogOptionError(
      `--log-level expects ${LOG_LEVELS.join(', ')}, got '${rawLevel}'${from(flags.level, LOG_ENV.level)}`,
    );
  }
  const format: LogFormat = rawFormat === 'auto' ? (isTTY ? 'text' : 'json') : (rawFormat as LogFormat);
  return { format, level: rawLevel as LogLevel };
}

/** A bad --log-format or --log-level (or its variable): the CLI reports it as a usage error. */
export class LogOptionError extends Error {
  override name = 'LogOptionError';
}

/**
 * Lets through the first `burst` calls of each window of `windowMs` and counts the rest, so that a flood (bogus
 * joins, garbage on a subject) costs a line per window instead of a line per message. `take()` returns how many
 * were suppressed since the last line let through, or undefined when this one is suppressed too.
 */
export class LogRateLimiter {
  private windowStart = Number.NEGATIVE_INFINITY;
  private inWindow = 0;
  private suppressed = 0;

  constructor(
    private readonly windowMs = 10_000,
    private readonly burst = 5,
    private readonly now: () => number = Date.now,
  ) {}

  take(): number | undefined {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      this.windowStart = t;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.burst) {
      this.suppressed += 1;
      return undefined;
    }
    this.inWindow += 1;
    const s = this.suppressed;
    this.suppressed = 0;
    return s;
  }
}
