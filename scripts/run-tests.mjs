#!/usr/bin/env node
// Runs the compiled test suite with node's built-in test runner, then the backend-parametrised suites a second time
// on the native TensorFlow backend (PROMPTMESH_TEST_BACKEND=node) when scripts/setup.sh installed it.
// Usage: node scripts/run-tests.mjs [substring ...]   (only test files whose path contains one of the substrings)
// Environment: PROMPTMESH_TEST_NATIVE=off skips the native pass, =only runs only it; PROMPTMESH_REQUIRE_NATIVE=1
// makes a missing native backend a failure (CI sets it: a broken native install must not pass as a skip).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const testDir = join(root, 'dist', 'test');
// Suites whose numbers depend on the backend; everything else (bank, collective, control, deploy...) is the same
// JavaScript on every backend and runs once.
const NATIVE_SUITES = [
  '/test/model/t5.',
  '/test/model/t5-kv-cache.',
  '/test/model/t5-dropout',
  '/test/train/dropout.',
  '/test/backend/lean-backprop.',
  '/test/methods/',
  '/test/train/trainer.',
  '/test/train/run-job.',
  '/test/runtime/equivalence.',
  '/test/runtime/demo-learns.',
  '/test/train/pretrain-trainable.',
  '/test/cli/eval-predict.',
  '/test/bench/methods-bench.',
];

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk(testDir).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error(
    `no test files matched ${filters.join(', ') || '(all)'} under ${testDir}; did the build run?`,
  );
  process.exit(1);
}
const concurrency = process.env.PROMPTMESH_TEST_CONCURRENCY ?? '2';
const mode = process.env.PROMPTMESH_TEST_NATIVE ?? 'on';

function run(list, env) {
  const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...list], {
    stdio: 'inherit',
    cwd: root,
    env: { ...process.env, ...env },
  });
  return r.status ?? 1;
}

/** Loads the native backend in a child process; returns undefined when it works, else the reason. */
function nativeMissing() {
  const code = `import { selectBackend } from ${JSON.stringify(join(root, 'dist/src/backend/index.js'))};
    try { await selectBackend({ requested: 'node' }); } catch (e) { console.log(e.message); process.exit(3); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  return r.status === 0 ? undefined : r.stdout.trim() || r.stderr.trim().split('\n')[0];
}

let status = mode === 'only' ? 0 : run(files, { PROMPTMESH_TEST_BACKEND: '' });
const native = files.filter((f) => NATIVE_SUITES.some((s) => f.includes(s)));
if (mode !== 'off' && native.length > 0) {
  const why = nativeMissing();
  if (why) {
    console.error(`\nnative pass skipped (${native.length} files): ${why}`);
    if (process.env.PROMPTMESH_REQUIRE_NATIVE === '1') status ||= 1;
  } else {
    console.error(
      `\nnative pass: ${native.length} backend-dependent test files on the native TensorFlow backend`,
    );
    // Run even when the first pass failed, so one CI run shows every failure.
    const nativeStatus = run(native, { PROMPTMESH_TEST_BACKEND: 'node' });
    status ||= nativeStatus;
  }
}
process.exit(status);
