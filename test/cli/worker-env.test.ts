import assert from 'node:assert/strict';
import { test } from 'node:test';
import { localWorkerEnv, MALLOC_ENV, visibleGpus } from '../../src/cli/worker-env.js';

test('local workers divide the CPUs among themselves and get the malloc settings', () => {
  const w = localWorkerEnv(8, { cpus: 16, gpus: [], env: {} });
  assert.deepEqual(w.env(3), { ...MALLOC_ENV, TF_NUM_INTRAOP_THREADS: '2', TF_NUM_INTEROP_THREADS: '1' });
  assert.match(w.reason, /2 TensorFlow thread\(s\) each \(16 CPUs \/ 8 workers\), no GPU/);
  // More workers than CPUs: one thread each, never zero.
  assert.equal(localWorkerEnv(3, { cpus: 2, gpus: [], env: {} }).env(0).TF_NUM_INTRAOP_THREADS, '1');
});

test('each worker gets its own GPU, round-robin when there are fewer GPUs than workers; TF32 only on request', () => {
  const w = localWorkerEnv(2, { cpus: 16, gpus: ['0', '1', '2'], env: {} });
  assert.equal(w.env(0).CUDA_VISIBLE_DEVICES, '0');
  assert.equal(w.env(1).CUDA_VISIBLE_DEVICES, '1');
  assert.equal(w.env(0).PROMPTMESH_ALLOW_TF32, undefined);
  assert.match(w.reason, /one GPU each \(0, 1\), TF32 off/);
  const shared = localWorkerEnv(3, { cpus: 16, gpus: ['4', '7'], env: {}, allowTf32: true });
  assert.deepEqual(
    [0, 1, 2].map((i) => shared.env(i).CUDA_VISIBLE_DEVICES),
    ['4', '7', '4'],
  );
  assert.equal(shared.env(0).PROMPTMESH_ALLOW_TF32, '1');
  assert.match(shared.reason, /2 GPU\(s\) shared round-robin by 3 workers, TF32 allowed/);
});

test("the user's own variables win", () => {
  const w = localWorkerEnv(2, {
    cpus: 16,
    gpus: [],
    env: { TF_NUM_INTRAOP_THREADS: '3', MALLOC_TOP_PAD_: '0' },
  });
  assert.equal(w.env(0).TF_NUM_INTRAOP_THREADS, undefined);
  assert.equal(w.env(0).MALLOC_TOP_PAD_, undefined);
  assert.equal(w.env(0).MALLOC_MMAP_THRESHOLD_, MALLOC_ENV.MALLOC_MMAP_THRESHOLD_);
  assert.match(w.reason, /TF_NUM_INTRAOP_THREADS=3 \(yours\)/);
});

test('CUDA_VISIBLE_DEVICES, when set, is the list of GPUs to hand out', () => {
  assert.deepEqual(visibleGpus({ CUDA_VISIBLE_DEVICES: '2,3' }), ['2', '3']);
  assert.deepEqual(visibleGpus({ CUDA_VISIBLE_DEVICES: '' }), []);
  assert.deepEqual(visibleGpus({ CUDA_VISIBLE_DEVICES: '-1' }), []);
});
