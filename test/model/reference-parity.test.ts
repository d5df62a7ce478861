/**
 * `promptmesh model run` on every backend against the reference implementation users compare with: Hugging Face
 * transformers' T5 in PyTorch (float32, CPU), on the shipped demo backbone. The native backend must match it as
 * closely as wasm does. Skips with a message when python3 lacks torch or transformers
 * (`bash scripts/setup.sh --python-peers` installs them from the Python package index).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';

const MAIN = path.resolve('dist/src/cli/main.js');
const MODEL = path.resolve('assets/demo-backbone');
const REFERENCE = path.resolve('test/helpers/hf_t5_reference.py');
const ARGS = ['--input-ids', '13,7,42,99,5,1', '--decoder-input-ids', '0,5,17,3'];

interface Forward {
  encoderHiddenStates: number[][];
  logits: number[][];
}

function pythonPeers(): string | undefined {
  const r = spawnSync('python3', ['-c', 'import torch, transformers'], { encoding: 'utf8' });
  return r.status === 0
    ? undefined
    : `python3 cannot import torch and transformers (bash scripts/setup.sh --python-peers installs them): ${r.stderr.trim().split('\n').at(-1)}`;
}

function nativeMissing(): string | undefined {
  const r = spawnSync(process.execPath, [MAIN, 'model', 'run', '--backend', 'node', '--help'], {
    encoding: 'utf8',
  });
  return r.status === 0 ? undefined : 'cannot run the CLI';
}

function modelRun(backend: string): Forward | string {
  const r = spawnSync(
    process.execPath,
    [MAIN, 'model', 'run', '--backend', backend, '--checkpoint', MODEL, ...ARGS, '--json'],
    {
      encoding: 'utf8',
      env: { ...process.env, PROMPTMESH_BACKEND: '' },
    },
  );
  if (r.status !== 0) return r.stderr.trim().split('\n').at(-1) ?? `exit ${r.status}`;
  return JSON.parse(r.stdout) as Forward;
}

function maxAbsDiff(a: number[][], b: number[][]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  a.forEach((row, i) => {
    assert.equal(row.length, b[i]!.length);
    row.forEach((x, j) => {
      m = Math.max(m, Math.abs(x - b[i]![j]!));
    });
  });
  return m;
}

test('model run on wasm and on the native backend matches transformers, native as closely as wasm', {
  skip: pythonPeers() ?? nativeMissing(),
}, (t) => {
  const ref = spawnSync('python3', [REFERENCE, MODEL, ...ARGS], { encoding: 'utf8' });
  assert.equal(ref.status, 0, ref.stderr);
  const reference = JSON.parse(ref.stdout) as Forward;
  const scale = Math.max(...reference.logits.flat().map(Math.abs));
  const diffs: Record<string, { enc: number; logits: number }> = {};
  for (const backend of ['wasm', 'node']) {
    const got = modelRun(backend);
    if (typeof got === 'string') {
      if (backend === 'node') {
        t.diagnostic(`native backend not installed, compared wasm only: ${got}`);
        continue;
      }
      assert.fail(`model run --backend ${backend} failed: ${got}`);
    }
    diffs[backend] = {
      enc: maxAbsDiff(got.encoderHiddenStates, reference.encoderHiddenStates),
      logits: maxAbsDiff(got.logits, reference.logits),
    };
  }
  t.diagnostic(
    `max |promptmesh - transformers| (logits up to ${scale.toFixed(1)}): ${JSON.stringify(diffs)}`,
  );
  for (const [backend, d] of Object.entries(diffs)) {
    assert.ok(d.logits < 1e-5 * Math.max(1, scale), `${backend}: logits differ by ${d.logits}`);
    assert.ok(d.enc < 1e-5, `${backend}: encoder states differ by ${d.enc}`);
  }
  if (diffs.node) {
    // "As closely as wasm": within 2x of wasm's own distance, or float32 rounding of the logits' scale.
    const floor = 2e-7 * Math.max(1, scale);
    assert.ok(diffs.node.logits <= Math.max(2 * diffs.wasm!.logits, floor), JSON.stringify(diffs));
    assert.ok(diffs.node.enc <= Math.max(2 * diffs.wasm!.enc, 2e-7), JSON.stringify(diffs));
  }
});
