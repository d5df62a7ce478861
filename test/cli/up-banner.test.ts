import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dropTensorFlowBanner, holdBackLines } from '../../src/cli/commands/up.js';
import { SCORE_SUMMARY_MARK } from '../../src/train/history.js';

test("up drops only TensorFlow's two load-time INFO lines from the workers' output", () => {
  const banner =
    'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n' +
    'I0000 00:00:1796071371.882154    8427 port.cc:153] oneDNN custom operations are on. You may see ...\n';
  const error = 'E0000 00:00:1796071371.9 8427 cuda_dnn.cc:1] could not create cudnn handle\n';
  assert.equal(
    dropTensorFlowBanner(`${banner}[worker-0] backend: node\n${error}`),
    `[worker-0] backend: node\n${error}`,
  );
  assert.equal(
    dropTensorFlowBanner('[worker-1] step 3/60 (no newline yet)'),
    '[worker-1] step 3/60 (no newline yet)',
  );
});

test("up holds back the coordinator's untrained -> trained lines (text or JSON) to print them last", () => {
  const summary = `[coordinator] stage 'targets' (validation, label scoring): a 50.0 -> 63.0 ${SCORE_SUMMARY_MARK}60)\n`;
  const json = `{"level":"info","msg":"stage 's' (validation, generation): a 1.0 -> 2.0 ${SCORE_SUMMARY_MARK}4)"}`;
  const other = "[coordinator] job 'demo' complete; bank head 0123\n";
  assert.deepEqual(holdBackLines(`${summary}${other}${json}`, SCORE_SUMMARY_MARK), {
    shown: other,
    held: [summary, `${json}\n`],
  });
  assert.deepEqual(holdBackLines(other, SCORE_SUMMARY_MARK), { shown: other, held: [] });
});
