import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';

import './gradients.js';
import { installLeanBackprop } from './lean-backprop.js';

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
  /** For the native backends: TensorFlow's version, the device kernels run on, and TensorFlow's thread pools. */
  native?: NativeInfo;
}

export class BackendUnavailableError extends Error {
  override name = 'BackendUnavailableError';
  constructor(
    readonly backend: BackendName,
    readonly why: string,
    options?: { cause?: unknown },
  ) {
    super(`backend '${backend}' cannot load: ${why}. ${installHint(backend)}`, options);
  }
}

function installHint(name: BackendName): string {
  switch (name) {
    case 'node-gpu':
      return (
        "On a machine with an NVIDIA GPU, `bash scripts/setup.sh` builds it offline against TensorFlow's pip wheel " +
        '(docs/backends.md), or use the GPU image in deploy/; or pick another backend with --backend wasm'
      );
    case 'node':
      return (
        "`bash scripts/setup.sh` builds it offline against TensorFlow's pip wheel (or `bash " +
        'scripts/native-backend.sh --force` to rebuild; docs/backends.md); or pick another backend with --backend wasm'
      );
    case 'wasm':
      return 'Reinstall the npm packages (`npm ci`): @tensorflow/tfjs-backend-wasm is a regular dependency';
    case 'cpu':
      return 'Reinstall the npm packages (`npm ci`): @tensorflow/tfjs-backend-cpu is a regular dependency';
  }
}

const require = createRequire(import.meta.url);

/** The first line of an error, for one-line reasons. */
function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();
}

/**
 * Environment the native TensorFlow runtime reads once, when the binding loads. Values already set win.
 * - TF_CPP_MIN_LOG_LEVEL=2: TensorFlow's INFO/WARNING lines would interleave with our progress lines.
 * - TensorFlow's oneDNN rewrites stay on (TF_ENABLE_ONEDNN_OPTS unset): they made the t5-small bench step 10-25%
 *   faster on our 2-core machines (docs/backends.md); the price is two INFO lines TensorFlow prints at load, which
 *   no log-level variable silences.
 * - NVIDIA_TF32_OVERRIDE=0 unless PROMPTMESH_ALLOW_TF32=1: TensorFlow runs float32 matmuls and convolutions in TF32
 *   on Ampere and newer by default. TF32 keeps 10 of float32's 23 mantissa bits, so each input is rounded to about
 *   1e-3 relative (not measured here: no GPU), far beyond the 1e-5 bounds our parity tests hold the backends to.
 * - TF_FORCE_GPU_ALLOW_GROWTH=true: allocate GPU memory as needed rather than all of it up front, so the memory
 *   gauge means something and a second process on the same GPU (an evaluator) is possible.
 */
export function nativeRuntimeEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {
    TF_CPP_MIN_LOG_LEVEL: '2',
    TF_FORCE_GPU_ALLOW_GROWTH: 'true',
  };
  if (env.PROMPTMESH_ALLOW_TF32 !== '1') out.NVIDIA_TF32_OVERRIDE = '0';
  for (const k of Object.keys(out)) if (env[k] !== undefined && env[k] !== '') delete out[k];
  return out;
}

interface NativeInfo {
  tensorflow: string;
  device: 'CPU' | 'GPU';
  intraOpThreads: number;
  interOpThreads: number;
}

let nativeInfo: NativeInfo | undefined;

/**
 * Loads tfjs-node(-gpu) only after its native binding has loaded on its own: the package registers every kernel
 * for the `tensorflow` backend before it looks for the binding, so a failed require would leave those kernels
 * behind and the next package would re-register them with a warning per kernel.
 */
function loadNative(name: 'node' | 'node-gpu'): void {
  const pkg = name === 'node-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  let pkgJson: string;
  try {
    pkgJson = require.resolve(`${pkg}/package.json`);
  } catch (err) {
    throw new BackendUnavailableError(name, `${pkg} is not installed`, { cause: err });
  }
  let bindingPath: string;
  try {
    const preGyp = require('@mapbox/node-pre-gyp') as { find: (p: string) => string };
    bindingPath = preGyp.find(pkgJson);
  } catch (err) {
    throw new BackendUnavailableError(name, `cannot locate ${pkg}'s binding (${firstLine(err)})`, {
      cause: err,
    });
  }
  if (!existsSync(bindingPath))
    throw new BackendUnavailableError(name, `${pkg} is installed but its native binding is not built`);
  Object.assign(process.env, nativeRuntimeEnv());
  let binding: { TF_Version?: string };
  try {
    binding = require(bindingPath) as { TF_Version?: string };
  } catch (err) {
    // A missing libtensorflow, a binding built for another ABI or platform: the loader's own words.
    throw new BackendUnavailableError(name, `${pkg}'s binding failed to load (${firstLine(err)})`, {
      cause: err,
    });
  }
  try {
    require(pkg);
  } catch (err) {
    throw new BackendUnavailableError(name, `${pkg} failed to load (${firstLine(err)})`, { cause: err });
  }
  const cores = availableParallelism();
  const threads = (v: string | undefined) => (v && Number(v) > 0 ? Number(v) : cores);
  nativeInfo = {
    tensorflow: binding.TF_Version ?? 'unknown',
    device: 'CPU',
    intraOpThreads: threads(process.env.TF_NUM_INTRAOP_THREADS),
    interOpThreads: threads(process.env.TF_NUM_INTEROP_THREADS),
  };
}

async function load(name: BackendName): Promise<string> {
  switch (name) {
    case 'node-gpu':
    case 'node':
      loadNative(name);
      return 'tensorflow';
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
        skipped.push({ name, why: err instanceof BackendUnavailableError ? err.why : String(err) });
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
  installLeanBackprop();
  if (chosen.tfBackend === 'tensorflow' && nativeInfo) {
    const gpu = (tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
    chosen.native = { ...nativeInfo, device: gpu ? 'GPU' : 'CPU' };
  }
  current = chosen;
  opts.log?.(`backend: ${describeBackend(chosen)} (${chosen.reason})`);
  return chosen;
}

/** `node: TensorFlow 2.21.0 on CPU, 2 intra-op / 2 inter-op threads` or just `wasm`. */
export function describeBackend(c: BackendChoice): string {
  if (!c.native) return c.name;
  const n = c.native;
  const devices =
    n.device === 'GPU' ? `GPU (CUDA_VISIBLE_DEVICES=${process.env.CUDA_VISIBLE_DEVICES ?? 'all'})` : 'CPU';
  const tf32 = n.device === 'GPU' ? `, TF32 ${process.env.NVIDIA_TF32_OVERRIDE === '0' ? 'off' : 'on'}` : '';
  return `${c.name}: TensorFlow ${n.tensorflow} on ${devices}, ${n.intraOpThreads} intra-op / ${n.interOpThreads} inter-op threads${tf32}`;
}

/** The backend chosen by the last `selectBackend`, if any. */
export function currentBackend(): BackendChoice | undefined {
  return current;
}
