import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dropTensorFlowBanner } from '../../src/cli/commands/up.js';

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
