import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';

// Each case runs in a fresh process: backend selection is process-global state in tfjs.
const MAIN = path.resolve('dist/src/cli/main.js');
function probe(code: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    encoding: 'utf8',
    env: { ...process.env, PROMPTMESH_BACKEND: '', ...env },
  });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr.trim() };
}
const SELECT = `import { selectBackend } from '${path.resolve('dist/src/backend/index.js')}';`;

test('auto picks the first backend that loads and says why the others were skipped', () => {
  const r = probe(`${SELECT} const c = await selectBackend({}); console.log(JSON.stringify(c));`);
  assert.equal(r.status, 0, r.err);
  const c = JSON.parse(r.out) as { name: string; reason: string; skipped: { name: string }[] };
  // tfjs-node(-gpu) cannot install on these machines, so auto lands on wasm with both recorded as skipped.
  assert.equal(c.name, 'wasm');
  assert.deepEqual(
    c.skipped.map((s) => s.name),
    ['node-gpu', 'node'],
  );
  assert.match(c.reason, /skipped node-gpu \(@tensorflow\/tfjs-node-gpu is not installed\)/);
});

test('the env var and the flag override auto, the flag winning', () => {
  const env = probe(`${SELECT} console.log((await selectBackend({})).name);`, { PROMPTMESH_BACKEND: 'cpu' });
  assert.equal(env.out, 'cpu', env.err);
  const flag = probe(`${SELECT} console.log((await selectBackend({ requested: 'wasm' })).name);`, {
    PROMPTMESH_BACKEND: 'cpu',
  });
  assert.equal(flag.out, 'wasm', flag.err);
});

test('a requested backend that cannot load says why and what to install', () => {
  const r = probe(
    `${SELECT} try { await selectBackend({ requested: 'node-gpu' }); } catch (e) { console.log(e.name + ': ' + e.message); }`,
  );
  assert.match(
    r.out,
    /BackendUnavailableError: backend 'node-gpu' cannot load: @tensorflow\/tfjs-node-gpu is not installed/,
  );
  assert.match(r.out, /npm install @tensorflow\/tfjs-node-gpu/);
  assert.match(r.out, /--backend wasm/);
});

test('an unknown backend name lists the valid ones', () => {
  const r = probe(`${SELECT} try { await selectBackend({}); } catch (e) { console.log(e.message); }`, {
    PROMPTMESH_BACKEND: 'tpu',
  });
  assert.match(
    r.out,
    /PROMPTMESH_BACKEND: unknown backend 'tpu'; choose one of auto, node-gpu, node, wasm, cpu/,
  );
});

test('the CLI logs the choice', () => {
  const r = spawnSync(
    process.execPath,
    [MAIN, 'model', 'run', '--checkpoint', '/nonexistent', '--input-ids', '1'],
    {
      encoding: 'utf8',
    },
  );
  assert.match(r.stderr, /backend: wasm \(auto: first available in node-gpu > node > wasm > cpu/);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /\/nonexistent/);
});
