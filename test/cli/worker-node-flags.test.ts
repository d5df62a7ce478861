import assert from 'node:assert/strict';
import { test } from 'node:test';
import { localWorkerNodeFlags } from '../../src/cli/worker-node-flags.js';

test('local workers get --single-threaded-gc only when workers + coordinator outnumber the CPUs', () => {
  assert.deepEqual(localWorkerNodeFlags(2, 2).flags, ['--single-threaded-gc']);
  assert.deepEqual(localWorkerNodeFlags(4, 4).flags, ['--single-threaded-gc']);
  assert.deepEqual(localWorkerNodeFlags(1, 2).flags, []);
  assert.deepEqual(localWorkerNodeFlags(3, 16).flags, []);
  assert.match(localWorkerNodeFlags(2, 2).reason, /2 workers and the coordinator on 2 CPUs/);
});
