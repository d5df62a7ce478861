#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createLogger, resolveLogOptions } from '../telemetry/logger.js';
import type { CliCommand, CliContext } from './command.js';
import { UsageError } from './command.js';
import { commands } from './commands/index.js';

const PROGRAM = 'promptmesh';

function formatOptions(cmd: CliCommand): string {
  const rows = cmd.options.map((o) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${o.name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    const def = o.default !== undefined && o.default !== false ? ` (default: ${String(o.default)})` : '';
    return [flag, `${o.description}${def}`] as const;
  });
  rows.push(['-h, --help', 'show this help']);
  const width = Math.min(34, Math.max(...rows.map((r) => r[0].length)) + 2);
  return rows
    .map(([f, d]) =>
      f.length + 2 > width ? `  ${f}\n  ${' '.repeat(width)}${d}` : `  ${f.padEnd(width)}${d}`,
    )
    .join('\n');
}

export function commandHelp(cmd: CliCommand): string {
  const parts = [`Usage: ${PROGRAM} ${cmd.path.join(' ')} ${cmd.usage}`.trimEnd(), '', cmd.summary];
  if (cmd.description) parts.push('', cmd.description.trim());
  if (cmd.positionals)
    parts.push(
      '',
      'Arguments:',
      `  ${cmd.positionals.name.padEnd(Math.max(18, cmd.positionals.name.length + 2))}${cmd.positionals.description}`,
    );
  parts.push('', 'Options:', formatOptions(cmd));
  if (cmd.examples?.length) parts.push('', 'Examples:', ...cmd.examples.map((e) => `  ${e}`));
  return `${parts.join('\n')}\n`;
}

export function topHelp(): string {
  const width = Math.max(...commands.map((c) => c.path.join(' ').length)) + 4;
  const lines = commands.map((c) => `  ${c.path.join(' ').padEnd(width)}${c.summary}`);
  return [
    `Usage: ${PROGRAM} <command> [options]`,
    '',
    'Train multi-task soft prompts (prompt tuning, ATTEMPT, TPT, SPT) on a frozen T5.',
    '',
    'Commands:',
    ...lines,
    '',
    `Run '${PROGRAM} <command> --help' for a command's options and examples.`,
    'Environment: PROMPTMESH_BACKEND=node-gpu|node|wasm|cpu picks the TensorFlow.js backend (default: auto).',
    '',
  ].join('\n');
}

/** Finds the command whose path is the longest prefix of argv. */
function findCommand(argv: string[]): { cmd: CliCommand; rest: string[] } | undefined {
  let best: CliCommand | undefined;
  for (const c of commands) {
    if (c.path.every((w, i) => argv[i] === w) && (!best || c.path.length > best.path.length)) best = c;
  }
  return best ? { cmd: best, rest: argv.slice(best.path.length) } : undefined;
}

export async function runCli(
  argv: string[],
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process,
): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.stdout.write(topHelp());
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version') {
    io.stdout.write('promptmesh 0.1.0\n');
    return 0;
  }
  const found = findCommand(argv);
  if (!found) {
    const group = commands.filter((c) => c.path[0] === argv[0]);
    if (group.length > 0) {
      io.stderr.write(
        `${PROGRAM} ${argv[0]}: expected one of: ${group.map((c) => c.path.slice(1).join(' ')).join(', ')}\n`,
      );
      if (argv.includes('--help') || argv.includes('-h')) {
        io.stdout.write(`${group.map((c) => `  ${c.path.join(' ').padEnd(20)}${c.summary}`).join('\n')}\n`);
        return 0;
      }
    } else {
      io.stderr.write(`${PROGRAM}: unknown command '${argv[0]}'\n\n${topHelp()}`);
    }
    return 2;
  }
  const { cmd, rest } = found;
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout.write(commandHelp(cmd));
    return 0;
  }
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const o of cmd.options) {
    options[o.name] = {
      type: o.type,
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
    const n = parsed.positionals.length;
    const p = cmd.positionals;
    if (!p && n > 0) throw new UsageError(`unexpected argument '${parsed.positionals[0]}'`);
    if (p && p.min !== undefined && n < p.min) throw new UsageError(`missing ${p.name}`);
    if (p && p.max !== undefined && n > p.max)
      throw new UsageError(`too many arguments (at most ${p.max} ${p.name})`);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    io.stderr.write(`${PROGRAM} ${cmd.path.join(' ')}: ${msg}\n\n${commandHelp(cmd)}`);
    return 2;
  }
  const values: CliContext['values'] = {};
  for (const o of cmd.options) if (o.default !== undefined) values[o.name] = o.default;
  Object.assign(values, parsed.values);
  try {
    return await cmd.run({ values, positionals: parsed.positionals, stdout: io.stdout, stderr: io.stderr });
  } catch (err) {
    const json = cmd.options.some((o) => o.name === 'log-format') && jsonLogs(values, io.stderr);
    if (err instanceof UsageError) {
      if (json) {
        createLogger({ format: 'json', level: 'error', write: (l) => io.stderr.write(l) }).error(
          err.message,
          {
            role: cmd.path.join(' '),
          },
        );
      } else {
        io.stderr.write(
          `${PROGRAM} ${cmd.path.join(' ')}: ${err.message}\nRun '${PROGRAM} ${cmd.path.join(' ')} --help' for usage.\n`,
        );
      }
      return 2;
    }
    const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    // A process that logs JSON lines ends with one too, at level error, so the pipeline sees why it stopped.
    if (json)
      createLogger({ format: 'json', level: 'error', write: (l) => io.stderr.write(l) }).error(msg, {
        role: cmd.path.join(' '),
      });
    else io.stderr.write(`${PROGRAM} ${cmd.path.join(' ')}: ${msg}\n`);
    if (process.env.PROMPTMESH_DEBUG && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`);
    return 1;
  }
}

function jsonLogs(values: CliContext['values'], stderr: NodeJS.WritableStream): boolean {
  try {
    const format = values['log-format'];
    return (
      resolveLogOptions(
        { format: typeof format === 'string' ? format : undefined },
        (stderr as NodeJS.WriteStream).isTTY === true,
      ).format === 'json'
    );
  } catch {
    return false;
  }
}

function invokedDirectly(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  runCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // A finished command must not linger because a library left a handle open (a socket being drained, a
      // thread): give pending output a moment, then exit. The timer does not itself keep the process alive.
      setTimeout(() => process.exit(code), 1500).unref();
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
