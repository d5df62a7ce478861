import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';

// Each case runs in a fresh process: backend selection is process-global state in tfjs.
const MAIN = path.resolve('dist/src/cli/main.js');
const NODE_MODULES = path.resolve('node_modules');
function probe(
  code: string,
  env: Record<string, string> = {},
  backendModule = path.resolve('dist/src/backend/index.js'),
) {
  const r = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', `import { selectBackend } from '${backendModule}'; ${code}`],
    {
      encoding: 'utf8',
      env: { ...process.env, PROMPTMESH_BACKEND: '', ...env },
    },
  );
  return { status: r.status, out: r.stdout.trim(), err: r.stderr.trim() };
}

/** Whether scripts/native-backend.sh left a working binding here; the native cases need one. */
function nativeInstalled(): string | undefined {
  const r = probe(
    `try { await selectBackend({ requested: 'node' }); } catch (e) { console.log(e.message); process.exit(3); }`,
  );
  return r.status === 0
    ? undefined
    : `native backend not installed here (bash scripts/setup.sh builds it): ${r.out}`;
}
const noNative = nativeInstalled();

test('auto prefers the native backend when it is installed, and says why node-gpu was skipped', {
  skip: noNative,
}, () => {
  const r = probe(`const c = await selectBackend({}); console.log(JSON.stringify(c));`);
  assert.equal(r.status, 0, r.err);
  const c = JSON.parse(r.out) as {
    name: string;
    reason: string;
    skipped: { name: string; why: string }[];
    native: { tensorflow: string; device: string; intraOpThreads: number };
  };
  assert.equal(c.name, 'node');
  assert.deepEqual(
    c.skipped.map((s) => s.name),
    ['node-gpu'],
  );
  assert.match(c.native.tensorflow, /^2\.\d+\.\d+$/);
  assert.equal(c.native.device, 'CPU');
});

test('the log line names the backend, TensorFlow version, device and thread counts', {
  skip: noNative,
}, () => {
  const r = probe(`await selectBackend({ requested: 'node', log: (l) => console.log(l) });`, {
    TF_NUM_INTRAOP_THREADS: '3',
    TF_NUM_INTEROP_THREADS: '1',
  });
  assert.equal(r.status, 0, r.err);
  assert.match(
    r.out,
    /^backend: node: TensorFlow 2\.\d+\.\d+ on CPU, 3 intra-op \/ 1 inter-op threads \(requested by --backend node\)$/,
  );
});

test('the env var and the flag override auto, the flag winning', () => {
  const env = probe(`console.log((await selectBackend({})).name);`, { PROMPTMESH_BACKEND: 'cpu' });
  assert.equal(env.out, 'cpu', env.err);
  const flag = probe(`console.log((await selectBackend({ requested: 'wasm' })).name);`, {
    PROMPTMESH_BACKEND: 'cpu',
  });
  assert.equal(flag.out, 'wasm', flag.err);
});

test('an unknown backend name lists the valid ones', () => {
  const r = probe(`try { await selectBackend({}); } catch (e) { console.log(e.message); }`, {
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
      env: { ...process.env, PROMPTMESH_BACKEND: '' },
    },
  );
  assert.match(
    r.stderr,
    /backend: (node: TensorFlow|wasm) .*\(auto: first available in node-gpu > node > wasm > cpu/,
  );
  assert.equal(r.status, 1);
  assert.match(r.stderr, /\/nonexistent/);
});

/**
 * Broken installs, each in a throw-away project: a copy of dist/src beside a node_modules of links to the real
 * packages, except @tensorflow/tfjs-node(-gpu), which are real folders (their package.json copied, so that module
 * resolution stays inside the throw-away project) in the state each case describes.
 */
describe('a broken native install: auto falls back to wasm naming the error; --backend node fails with the fix', () => {
  const roots: string[] = [];
  after(() => {
    for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  });

  function project(tfjsNode: 'absent' | 'no-binding' | 'garbage-binding' | 'no-libtensorflow'): string {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-backend-'));
    roots.push(root);
    fs.cpSync(path.resolve('dist/src'), path.join(root, 'dist/src'), { recursive: true });
    const nm = path.join(root, 'node_modules');
    fs.mkdirSync(path.join(nm, '@tensorflow'), { recursive: true });
    for (const e of fs.readdirSync(NODE_MODULES)) {
      if (e !== '@tensorflow' && e !== '.bin') fs.symlinkSync(path.join(NODE_MODULES, e), path.join(nm, e));
    }
    for (const e of fs.readdirSync(path.join(NODE_MODULES, '@tensorflow'))) {
      if (e === 'tfjs-node' || e === 'tfjs-node-gpu') continue;
      fs.symlinkSync(path.join(NODE_MODULES, '@tensorflow', e), path.join(nm, '@tensorflow', e));
    }
    if (tfjsNode === 'absent') return root;
    const real = path.join(NODE_MODULES, '@tensorflow/tfjs-node');
    const pkg = path.join(nm, '@tensorflow/tfjs-node');
    fs.mkdirSync(pkg);
    fs.copyFileSync(path.join(real, 'package.json'), path.join(pkg, 'package.json'));
    fs.symlinkSync(path.join(real, 'dist'), path.join(pkg, 'dist'));
    if (tfjsNode === 'no-binding') return root;
    fs.mkdirSync(path.join(pkg, 'lib/napi-v8'), { recursive: true });
    const binding = path.join(pkg, 'lib/napi-v8/tfjs_binding.node');
    if (tfjsNode === 'garbage-binding') {
      // What a binding built for another platform, or truncated by a failed copy, looks like to the loader.
      fs.writeFileSync(binding, 'not an ELF shared object');
    } else {
      fs.copyFileSync(path.join(real, 'lib/napi-v8/tfjs_binding.node'), binding);
      fs.mkdirSync(path.join(pkg, 'deps/lib'), { recursive: true }); // empty: libtensorflow is gone
    }
    return root;
  }

  const cases = [
    ['absent', /@tensorflow\/tfjs-node is not installed/],
    ['no-binding', /@tensorflow\/tfjs-node is installed but its native binding is not built/],
    ['garbage-binding', /@tensorflow\/tfjs-node's binding failed to load \(.*(invalid ELF header|too short)/],
    ['no-libtensorflow', /binding failed to load \(libtensorflow_cc\.so\.2: cannot open shared object file/],
  ] as const;
  for (const [state, why] of cases) {
    const needsBinding = state === 'no-libtensorflow' ? noNative : undefined;
    test(`tfjs-node ${state}`, { skip: needsBinding }, () => {
      const root = project(state);
      const mod = path.join(root, 'dist/src/backend/index.js');
      const auto = probe(`const c = await selectBackend({}); console.log(JSON.stringify(c));`, {}, mod);
      assert.equal(auto.status, 0, auto.err);
      const c = JSON.parse(auto.out) as { name: string; skipped: { name: string; why: string }[] };
      assert.equal(c.name, 'wasm');
      const skippedNode = c.skipped.find((s) => s.name === 'node');
      assert.match(skippedNode?.why ?? '', why);
      // No kernel was registered twice: the failed package left nothing behind.
      assert.doesNotMatch(auto.err, /already registered/);

      const explicit = probe(
        `try { await selectBackend({ requested: 'node' }); } catch (e) { console.log(e.name + ': ' + e.message); }`,
        {},
        mod,
      );
      assert.match(explicit.out, /^BackendUnavailableError: backend 'node' cannot load: /);
      assert.match(explicit.out, why);
      assert.match(explicit.out, /bash scripts\/setup\.sh/);
      assert.match(explicit.out, /--backend wasm/);
    });
  }
});
