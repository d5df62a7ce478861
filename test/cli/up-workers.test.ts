/** `promptmesh up --workers N | MIN:MAX` and `--min-workers`: how many workers start and how many the job needs. */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { UsageError } from '../../src/cli/command.js';
import { readWorkers } from '../../src/cli/commands/up.js';

const ctx = (values: Record<string, string>) => ({
  values,
  positionals: [],
  stdout: new PassThrough(),
  stderr: new PassThrough(),
});

test('--workers N starts N and lets the survivors go on (minimum 1); MIN:MAX and --min-workers require MIN', () => {
  assert.deepEqual(readWorkers(ctx({ workers: '3' })), { min: 1, max: 3 });
  assert.deepEqual(readWorkers(ctx({})), { min: 1, max: 2 });
  assert.deepEqual(readWorkers(ctx({ workers: '2:4' })), { min: 2, max: 4 });
  assert.deepEqual(readWorkers(ctx({ workers: '4', 'min-workers': '3' })), { min: 3, max: 4 });
  assert.deepEqual(readWorkers(ctx({ workers: '2:2' })), { min: 2, max: 2 });
  for (const [values, re] of [
    [{ workers: '3:2' }, /need 1 <= minimum workers <= workers, got 3:2/],
    [{ workers: '0' }, /got 1:0/],
    [{ workers: 'two' }, /--workers expects N or MIN:MAX/],
    [{ workers: '2:3', 'min-workers': '2' }, /give the minimum once/],
    [{ workers: '3', 'min-workers': '-1' }, /--min-workers expects a whole number/],
  ] as const) {
    assert.throws(
      () => readWorkers(ctx(values)),
      (e: unknown) => e instanceof UsageError && re.test(e.message),
    );
  }
});
