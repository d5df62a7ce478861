import { spawnSync } from 'node:child_process';
import * as os from 'node:os';

/**
 * glibc malloc settings for processes that run the native TensorFlow backend. By default glibc serves every buffer
 * above 128 KiB with its own mmap and returns it with munmap on free, so each op of a training step maps, faults in
 * and unmaps its output (tens of MB on t5-small). Keeping freed memory in the heap made the native bench step
 * 10-15% faster (and a PyTorch step 2.7x faster) on our machines; see docs/backends.md.
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: '1073741824',
  MALLOC_TRIM_THRESHOLD_: '4294967296',
  MALLOC_TOP_PAD_: '1073741824',
};

export interface LocalWorkerEnv {
  /** Per worker index: the variables to add to the inherited environment. */
  env: (index: number) => Record<string, string>;
  /** One line for the launcher's log. */
  reason: string;
}

/**
 * GPU ids visible to this process: CUDA_VISIBLE_DEVICES when set (a scheduler gave us these), else the GPUs
 * `nvidia-smi -L` lists, else none.
 */
export function visibleGpus(env: NodeJS.ProcessEnv = process.env): string[] {
  const set = env.CUDA_VISIBLE_DEVICES;
  if (set !== undefined)
    return set
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '' && s !== '-1');
  const r = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 5000 });
  if (r.status !== 0 || !r.stdout) return [];
  return r.stdout
    .split('\n')
    .map((l) => /^GPU (\d+):/.exec(l)?.[1])
    .filter((x): x is string => x !== undefined);
}

/**
 * The environment of the N workers that `up` starts on one machine, so that they share it instead of fighting
 * over it: TensorFlow's intra-op pool gets cores / N threads each (by default every TensorFlow process sizes its
 * pool to all the cores, so `up --workers 8` on 16 cores would run 128 threads); the inter-op pool gets 1, since
 * tfjs runs eager ops one at a time; each worker gets one GPU (round-robin when there are fewer GPUs than
 * workers); malloc keeps freed buffers (MALLOC_ENV). Variables the user has set win. TF32 stays off unless
 * `allowTf32` (src/backend/backend.ts sets NVIDIA_TF32_OVERRIDE=0).
 */
export function localWorkerEnv(
  workers: number,
  opts: { cpus?: number; gpus?: string[]; env?: NodeJS.ProcessEnv; allowTf32?: boolean } = {},
): LocalWorkerEnv {
  const env = opts.env ?? process.env;
  const cpus = opts.cpus ?? os.availableParallelism();
  const gpus = opts.gpus ?? visibleGpus(env);
  const intra = Math.max(1, Math.floor(cpus / workers));
  const keep = (k: string) => env[k] !== undefined && env[k] !== '';
  const base: Record<string, string> = {
    ...MALLOC_ENV,
    TF_NUM_INTRAOP_THREADS: String(intra),
    TF_NUM_INTEROP_THREADS: '1',
  };
  if (opts.allowTf32) base.PROMPTMESH_ALLOW_TF32 = '1';
  for (const k of Object.keys(base)) if (keep(k)) delete base[k];
  const threads = keep('TF_NUM_INTRAOP_THREADS')
    ? `TF_NUM_INTRAOP_THREADS=${env.TF_NUM_INTRAOP_THREADS} (yours)`
    : `${intra} TensorFlow thread(s) each (${cpus} CPUs / ${workers} workers)`;
  const gpuText =
    gpus.length === 0
      ? 'no GPU'
      : gpus.length >= workers
        ? `one GPU each (${gpus.slice(0, workers).join(', ')})`
        : `${gpus.length} GPU(s) shared round-robin by ${workers} workers`;
  return {
    env: (i) => (gpus.length > 0 ? { ...base, CUDA_VISIBLE_DEVICES: gpus[i % gpus.length]! } : { ...base }),
    reason: `workers: ${threads}, ${gpuText}${gpus.length > 0 ? `, TF32 ${opts.allowTf32 ? 'allowed' : 'off'}` : ''}`,
  };
}
