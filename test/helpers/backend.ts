import type { BackendName } from '../../src/backend/index.js';

/**
 * The backend the backend-parametrised suites (model, methods, trainer, runtime equivalence) run on:
 * `PROMPTMESH_TEST_BACKEND`, default wasm. `scripts/run-tests.mjs` runs those suites a second time with `node`
 * (the native TensorFlow binding) when it is installed.
 */
export function testBackend(): BackendName {
  const v = process.env.PROMPTMESH_TEST_BACKEND;
  if (!v) return 'wasm';
  if (v === 'node' || v === 'node-gpu' || v === 'wasm' || v === 'cpu') return v;
  throw new Error(`PROMPTMESH_TEST_BACKEND='${v}': choose node-gpu, node, wasm or cpu`);
}
