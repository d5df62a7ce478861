import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';

import './gradients.js';

/**
 * Which TensorFlow.js backend runs the model. Order of preference in `auto`:
 * `node-gpu` (@tensorflow/tfjs-node-gpu, CUDA) > `node` (@tensorflow/tfjs-node, libtensorflow CPU) > `wasm` > `cpu`.
 */
export type BackendName = 'node-gpu' | 'node' | 'wasm' | 'cpu';
export type BackendRequest = BackendName | 'auto';

export const BACKEND_NAMES: readonly BackendName[] = ['node-gpu', 'node', 'wasm', 'cpu'];
/** Environment variable that overrides the backend when no flag is given. */
export const BACKEND_ENV = 'PROMPTMESH_BACKEND';

export interface BackendChoice {
  name: BackendName;
  /** The tfjs backend id registered in the engine (`tensorflow`, `wasm`, `cpu`). */
  tfBackend: string;
  /** Why this one was chosen, and why each preferred one was skipped. */
  reason: string;
  skipped: { name: BackendName; why: string }[];
}

export class BackendUnavailableError extends Error {
  override name = 'BackendUnavailableError';
  constructor(
    readonly backend: BackendName,
    why: string,
    options?: { cause?: unknown },
  ) {
    super(`backend '${backend}' cannot load: ${why}. ${installHint(backend)}`, options);
  }
}

function installHint(name: BackendName): string {
  switch (name) {
    case 'node-gpu':
      return (
        'Install it with `npm install @tensorflow/tfjs-node-gpu@4.22.0` on a machine with internet access, CUDA 11.2 and ' +
        'cuDNN 8.1 (its install script downloads libtensorflow), or use the GPU image in deploy/; ' +
        'or pick another backend with --backend wasm'
      );
    case 'node':
      return (
        'Install it with `npm install @tensorflow/tfjs-node@4.22.0` on a machine with internet access (its install ' +
        'script downloads libtensorflow); or pick another backend with --backend wasm'
      );
    case 'wasm':
      return 'Reinstall the npm packages (`npm ci`): @tensorflow/tfjs-backend-wasm is a regular dependency';
    case 'cpu':
      return 'Reinstall the npm packages (`npm ci`): @tensorflow/tfjs-backend-cpu is a regular dependency';
  }
}

const require = createRequire(import.meta.url);

async function load(name: BackendName): Promise<string> {
  switch (name) {
    case 'node-gpu':
    case 'node': {
      const pkg = name === 'node-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
      try {
        require.resolve(pkg);
      } catch (err) {
        throw new BackendUnavailableError(name, `${pkg} is not installed`, { cause: err });
      }
      try {
        require(pkg);
      } catch (err) {
        const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
        throw new BackendUnavailableError(name, `${pkg} is installed but failed to load (${msg})`, {
          cause: err,
        });
      }
      return 'tensorflow';
    }
    case 'wasm':
      try {
        await import('@tensorflow/tfjs-backend-wasm');
      } catch (err) {
        throw new BackendUnavailableError(name, '@tensorflow/tfjs-backend-wasm is missing', { cause: err });
      }
      return 'wasm';
    case 'cpu':
      try {
        await import('@tensorflow/tfjs-backend-cpu');
      } catch (err) {
        throw new BackendUnavailableError(name, '@tensorflow/tfjs-backend-cpu is missing', { cause: err });
      }
      return 'cpu';
  }
}

/** Parses a backend request from a flag or env value; throws with the valid names. */
export function parseBackendRequest(value: string, source: string): BackendRequest {
  if (value === 'auto' || (BACKEND_NAMES as readonly string[]).includes(value))
    return value as BackendRequest;
  throw new Error(`${source}: unknown backend '${value}'; choose one of auto, ${BACKEND_NAMES.join(', ')}`);
}

let current: BackendChoice | undefined;

/**
 * Loads and activates a backend. The flag wins over the env var, which wins over `auto`.
 * `auto` walks the preference order and records why each earlier backend was skipped.
 * A backend asked for by name that cannot load is an error: silently falling back would hide a broken GPU node.
 */
export async function selectBackend(
  opts: { requested?: string | undefined; env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): Promise<BackendChoice> {
  const env = opts.env ?? process.env;
  const fromFlag = opts.requested;
  const fromEnv = env[BACKEND_ENV];
  const request = fromFlag
    ? parseBackendRequest(fromFlag, '--backend')
    : fromEnv
      ? parseBackendRequest(fromEnv, BACKEND_ENV)
      : 'auto';
  if (current && (request === 'auto' || request === current.name)) return current;

  const skipped: { name: BackendName; why: string }[] = [];
  let chosen: BackendChoice | undefined;
  if (request === 'auto') {
    for (const name of BACKEND_NAMES) {
      try {
        const tfBackend = await load(name);
        if (!(await tf.setBackend(tfBackend)))
          throw new BackendUnavailableError(name, 'tf.setBackend refused it');
        const why = skipped.length
          ? `; skipped ${skipped.map((s) => `${s.name} (${s.why})`).join(', ')}`
          : '';
        chosen = {
          name,
          tfBackend,
          reason: `auto: first available in ${BACKEND_NAMES.join(' > ')}${why}`,
          skipped,
        };
        break;
      } catch (err) {
        skipped.push({ name, why: err instanceof BackendUnavailableError ? shortWhy(err) : String(err) });
      }
    }
    if (!chosen)
      throw new Error(`no TensorFlow.js backend could load: ${skipped.map((s) => s.why).join('; ')}`);
  } else {
    const tfBackend = await load(request);
    if (!(await tf.setBackend(tfBackend)))
      throw new BackendUnavailableError(request, 'tf.setBackend refused it');
    chosen = {
      name: request,
      tfBackend,
      reason: fromFlag ? `requested by --backend ${request}` : `requested by ${BACKEND_ENV}=${request}`,
      skipped,
    };
  }
  await tf.ready();
  current = chosen;
  opts.log?.(`backend: ${chosen.name} (${chosen.reason})`);
  return chosen;
}

function shortWhy(err: BackendUnavailableError): string {
  const m = /cannot load: (.*?)\. /.exec(err.message);
  return m?.[1] ?? err.message;
}

/** The backend chosen by the last `selectBackend`, if any. */
export function currentBackend(): BackendChoice | undefined {
  return current;
}
