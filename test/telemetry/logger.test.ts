/**
 * The process logger (src/telemetry/logger.ts): level filtering, the JSON record's fields and the text lines,
 * fields bound by child loggers and read from a context at each record, the flag/env/TTY resolution, and the
 * rate limiter that keeps a flood from filling the disk.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  createLogger,
  LOG_ENV,
  type LogFormat,
  type LogLevel,
  LogOptionError,
  LogRateLimiter,
  resolveLogOptions,
} from '../../src/telemetry/index.js';

function capture(format: LogFormat, level: LogLevel) {
  const lines: string[] = [];
  let t = 1_700_000_000_000;
  const log = createLogger(
    { format, level, write: (l) => lines.push(l), now: () => t++ },
    { role: 'worker', job: 'j1', worker: 'w0' },
  );
  return { log, lines };
}

describe('logger', () => {
  test('drops records below the level and keeps the rest, in order', () => {
    for (const [level, kept] of [
      ['debug', ['d', 'i', 'w', 'e']],
      ['info', ['i', 'w', 'e']],
      ['warn', ['w', 'e']],
      ['error', ['e']],
    ] as const) {
      const { log, lines } = capture('json', level);
      log.debug('d');
      log.info('i');
      log.warn('w');
      log.error('e');
      assert.deepEqual(
        lines.map((l) => JSON.parse(l).msg),
        kept,
        `level ${level}`,
      );
      assert.equal(log.enabled('warn'), level !== 'error');
    }
  });

  test('JSON records: one line each, pino field names, bound and per-call fields', () => {
    const { log, lines } = capture('json', 'info');
    log('joined "job" j1\nsecond line', { step: 3 });
    log.child({ generation: 2 }).error('boom', { err: new TypeError('bad') });
    assert.equal(lines.length, 2);
    for (const l of lines) assert.ok(l.endsWith('\n') && !l.slice(0, -1).includes('\n'), l);
    const [a, b] = lines.map((l) => JSON.parse(l));
    assert.deepEqual(a, {
      time: 1_700_000_000_000,
      level: 'info',
      msg: 'joined "job" j1\nsecond line',
      role: 'worker',
      job: 'j1',
      worker: 'w0',
      step: 3,
    });
    assert.equal(b.level, 'error');
    assert.equal(b.generation, 2);
    assert.deepEqual(b.err, { type: 'TypeError', message: 'bad' });
    assert.ok(b.time > a.time);
  });

  test('a context function is read at every record, so fields follow the process', () => {
    const { log, lines } = capture('json', 'info');
    let state: { generation?: number; step?: number } = {};
    const live = log.child({}, () => state);
    live('before');
    state = { generation: 4, step: 7 };
    live('after');
    state = { generation: 5, step: 0 };
    live('later');
    const recs = lines.map((l) => JSON.parse(l));
    assert.equal(recs[0].generation, undefined);
    assert.deepEqual([recs[1].generation, recs[1].step], [4, 7]);
    assert.deepEqual([recs[2].generation, recs[2].step], [5, 0]);
  });

  test('text lines: the bracketed worker (or role), the level unless info, no timestamp', () => {
    const { log, lines } = capture('text', 'debug');
    log('joined');
    log.warn('slow');
    log.error('TypeError: bad');
    createLogger(
      { format: 'text', level: 'info', write: (l) => lines.push(l) },
      { role: 'coordinator' },
    )('x');
    createLogger({ format: 'text', level: 'info', write: (l) => lines.push(l) })('bare');
    assert.deepEqual(lines, [
      '[w0] joined\n',
      '[w0] warn: slow\n',
      '[w0] error: TypeError: bad\n',
      '[coordinator] x\n',
      'bare\n',
    ]);
  });

  test('format and level: the flag, else the environment, else text on a terminal and JSON elsewhere', () => {
    assert.deepEqual(resolveLogOptions({}, true, {}), { format: 'text', level: 'info' });
    assert.deepEqual(resolveLogOptions({}, false, {}), { format: 'json', level: 'info' });
    const env = { [LOG_ENV.format]: 'text', [LOG_ENV.level]: 'warn' };
    assert.deepEqual(resolveLogOptions({}, false, env), { format: 'text', level: 'warn' });
    assert.deepEqual(resolveLogOptions({ format: 'json', level: 'debug' }, true, env), {
      format: 'json',
      level: 'debug',
    });
    assert.deepEqual(
      resolveLogOptions({ format: 'auto' }, true, { [LOG_ENV.format]: 'json' }).format,
      'text',
    );
    assert.throws(() => resolveLogOptions({ format: 'yaml' }, true, {}), LogOptionError);
    assert.throws(
      () => resolveLogOptions({}, true, { [LOG_ENV.level]: 'verbose' }),
      (e: Error) => e instanceof LogOptionError && e.message.includes(LOG_ENV.level),
    );
  });

  test('rate limiter: a burst per window, then counts what it suppressed for the next line', () => {
    let now = 0;
    const rl = new LogRateLimiter(1000, 3, () => now);
    const taken: (number | undefined)[] = [];
    for (let i = 0; i < 10; i++) taken.push(rl.take());
    assert.deepEqual(taken, [
      0,
      0,
      0,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    now = 999;
    assert.equal(rl.take(), undefined);
    now = 1000;
    assert.equal(rl.take(), 8, 'the first line of the next window says how many were not logged');
    assert.equal(rl.take(), 0);
  });
});
