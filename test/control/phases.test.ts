/**
 * The heartbeat phases the coordinator reads: while rank 0's phase says it is inside the requested checkpoint (not
 * yet written), the checkpoint is not re-sent (coordinator.ts rankZeroWorksOn). The worker writes these phases
 * with the same helpers, so the words cannot drift apart.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkpointPhase, evaluatingPhase, inCheckpoint } from '../../src/control/protocol.js';

test('inCheckpoint: every phase of checkpoint N until it is written, and evaluation batches', () => {
  for (const what of [undefined, 'evaluating step 0', 'writing', 'retry 2'])
    assert.ok(inCheckpoint(checkpointPhase(10, what), 10), `${checkpointPhase(10, what)}`);
  assert.ok(inCheckpoint(evaluatingPhase(0, 'demo-nli', 8, 200), 10));
  assert.equal(inCheckpoint(checkpointPhase(10, 'written'), 10), false, 'written: its answer may be lost');
  assert.equal(inCheckpoint(checkpointPhase(1), 10), false, 'another step (1 is a prefix of 10)');
  assert.equal(inCheckpoint(checkpointPhase(100, 'writing'), 10), false);
  assert.equal(inCheckpoint('step 10: all-reduce', 10), false);
  assert.equal(inCheckpoint('generation 3: ready', 10), false);
});
