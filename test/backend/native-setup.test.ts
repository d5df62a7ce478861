/**
 * scripts/native-backend.sh, the offline installer of the native backend: a second run changes nothing, and each
 * way it can fail is one line with the reason, exit 0 (promptmesh then runs on wasm), or exit 1 when
 * PROMPTMESH_REQUIRE_NATIVE=1. Failures are provoked before the script touches node_modules, so the installed
 * backend other tests use is never disturbed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';

const SCRIPT = path.resolve('scripts/native-backend.sh');
const BINDING = path.resolve('node_modules/@tensorflow/tfjs-node/lib/napi-v8/tfjs_binding.node');
const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-native-'));
after(() => fs.rmSync(cache, { recursive: true, force: true }));

function runScript(args: string[], env: Record<string, string> = {}) {
  const t0 = performance.now();
  const r = spawnSync('bash', [SCRIPT, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PROMPTMESH_REQUIRE_NATIVE: '0', ...env },
  });
  return { status: r.status, err: r.stderr.trim(), out: r.stdout.trim(), ms: performance.now() - t0 };
}

const installed = fs.existsSync(BINDING)
  ? undefined
  : 'native backend not installed here (bash scripts/setup.sh)';

test('a second run finds the cached build and changes nothing', { skip: installed }, () => {
  const before = fs.statSync(BINDING).mtimeMs;
  const r = runScript(['--variant', 'cpu']);
  assert.equal(r.status, 0, r.err);
  assert.match(
    r.err,
    /^setup: native backend: ready \(@tensorflow\/tfjs-node [\d.]+, TensorFlow 2\.\d+\.\d+, cpu\)$/,
  );
  assert.equal(fs.statSync(BINDING).mtimeMs, before);
});

test("a wheel pip cannot download: one line with pip's error, exit 0, node_modules untouched", {
  skip: installed,
}, () => {
  const before = fs.statSync(BINDING).mtimeMs;
  const env = {
    PROMPTMESH_CACHE: cache,
    PROMPTMESH_TF_VERSION: '0.0.404',
    // pip reads its options from PIP_* variables too: no index, no mirror, no cache, so nothing can be found.
    PIP_CONFIG_FILE: '/dev/null',
    PIP_NO_INDEX: '1',
    PIP_FIND_LINKS: '/nonexistent',
    PIP_NO_CACHE_DIR: '1',
  };
  const r = runScript(['--variant', 'cpu'], env);
  assert.equal(r.status, 0, r.err);
  const last = r.err.split('\n').at(-1)!;
  assert.match(
    last,
    /^setup: native backend: not installed: pip could not download tensorflow-cpu==0\.0\.404 \(ERROR: .*\); promptmesh will run on wasm$/,
  );
  assert.equal(fs.statSync(BINDING).mtimeMs, before);
  const required = runScript(['--variant', 'cpu'], { ...env, PROMPTMESH_REQUIRE_NATIVE: '1' });
  assert.equal(required.status, 1, 'a required native backend that cannot install fails the set-up');
});

test('a GPU machine whose GPU variant cannot install gets the CPU variant', { skip: installed }, () => {
  // A stand-in nvidia-smi that lists one GPU, first on PATH; pip finds nothing, as on a mirror without CUDA wheels.
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-fake-gpu-'));
  fs.writeFileSync(path.join(bin, 'nvidia-smi'), '#!/bin/sh\necho "GPU 0: NVIDIA H200 (UUID: GPU-test)"\n', {
    mode: 0o755,
  });
  try {
    const r = runScript([], {
      PATH: `${bin}:${process.env.PATH}`,
      PROMPTMESH_NATIVE: 'auto',
      PROMPTMESH_CACHE: cache,
      PIP_CONFIG_FILE: '/dev/null',
      PIP_NO_INDEX: '1',
      PIP_FIND_LINKS: '/nonexistent',
    });
    assert.equal(r.status, 0, r.err);
    assert.match(
      r.err,
      /GPU variant not installed: pip could not download tensorflow==2\.21\.0 .*; trying the CPU variant/,
    );
    assert.match(r.err, /ready \(@tensorflow\/tfjs-node [\d.]+, TensorFlow 2\.21\.0, cpu\)$/);
  } finally {
    fs.rmSync(bin, { recursive: true, force: true });
  }
});

test('no pip: the reason and the package to install', () => {
  const r = runScript(['--variant', 'cpu'], {
    PROMPTMESH_CACHE: cache,
    PROMPTMESH_TF_VERSION: '0.0.405',
    PIP: 'false',
  });
  assert.equal(r.status, 0);
  assert.match(
    r.err,
    /not installed: pip is missing \(Debian: apt-get install python3-pip\); promptmesh will run on wasm/,
  );
});

test('--variant off and bad arguments', () => {
  const off = runScript(['--variant', 'off']);
  assert.equal(off.status, 0);
  assert.match(off.err, /skipped .*promptmesh runs on wasm/);
  const bad = runScript(['--variant', 'tpu']);
  assert.equal(bad.status, 2);
  assert.match(bad.err, /--variant must be auto, cpu, gpu or off \(got 'tpu'\)/);
  const help = runScript(['--help']);
  assert.equal(help.status, 0);
  assert.match(help.out, /bash scripts\/native-backend\.sh \[--variant auto\|cpu\|gpu\|off\] \[--force\]/);
});
