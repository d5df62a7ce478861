import {
  createLogger,
  LOG_ENV,
  type LogFields,
  type Logger,
  LogOptionError,
  resolveLogOptions,
} from '../telemetry/index.js';
import { type ProgressSink, TerminalProgress } from '../train/progress.js';

import { type CliContext, type CliOption, optString, UsageError } from './command.js';

/** The flags of every long-running process (coordinator, worker, up, serve); telemetry/logger.ts writes the records. */
export const LOG_OPTIONS: CliOption[] = [
  {
    name: 'log-format',
    type: 'string',
    value: 'text|json|auto',
    description: `log records as text lines or JSON lines (env ${LOG_ENV.format}; default auto: text on a terminal, JSON otherwise)`,
  },
  {
    name: 'log-level',
    type: 'string',
    value: 'LEVEL',
    description: `debug, info, warn or error (env ${LOG_ENV.level}; default info)`,
  },
];

/** The process's logger, writing to the command's stderr. Flags win over the environment. */
export function readLogger(ctx: CliContext, fields: LogFields, env: NodeJS.ProcessEnv = process.env): Logger {
  return createLogger({ ...readLogOptions(ctx, env), write: (l) => ctx.stderr.write(l) }, fields);
}

export function readLogOptions(ctx: CliContext, env: NodeJS.ProcessEnv = process.env) {
  try {
    return resolveLogOptions(
      { format: optString(ctx, 'log-format'), level: optString(ctx, 'log-level') },
      (ctx.stderr as NodeJS.WriteStream).isTTY === true,
      env,
    );
  } catch (e) {
    if (e instanceof LogOptionError) throw new UsageError(e.message);
    throw e;
  }
}

/**
 * The fields that change while a runtime process runs, from its status: generation (when one was formed), stage
 * and step (when a stage is loaded).
 */
export function runtimeLogContext(s: {
  generation: number;
  stage: number | undefined;
  step: number | undefined;
}): LogFields {
  return {
    ...(s.generation > 0 ? { generation: s.generation } : {}),
    ...(s.stage !== undefined ? { stage: s.stage } : {}),
    ...(s.step !== undefined ? { step: s.step } : {}),
  };
}

/**
 * Where live progress goes: redrawn on the terminal (or a line every intervalMs) in text format; in JSON format
 * info records, one per intervalMs at most for the running line, every line that stays.
 */
export function progressSink(ctx: CliContext, log: Logger, intervalMs: number): ProgressSink {
  if (log.format === 'text') return new TerminalProgress(ctx.stderr as NodeJS.WriteStream, intervalMs);
  let last = Number.NEGATIVE_INFINITY;
  return {
    update(line) {
      const now = Date.now();
      if (now - last < intervalMs) return;
      last = now;
      log.info(line, { progress: true });
    },
    log: (line) => log.info(line),
    done() {},
  };
}
