import * as os from 'node:os';

/**
 * Node/V8 flags for the worker processes that `up` (and `bench overhead`) start on one machine, and why.
 *
 * A training worker is one busy thread (wasm is single-threaded in Node), but V8's parallel garbage collector
 * adds helper threads: measured on the demo job, a worker burns 1.13-1.24 CPU-seconds per wall second. When the
 * workers plus the coordinator need more CPUs than the machine has, those helpers steal time from the other
 * workers' training threads, so `--single-threaded-gc` is used. On 2 CPUs with 2 workers, in four `bench overhead`
 * runs that measured both in the same run, the 2-vs-1 worker speed-up was 1.74/1.43/1.78/1.31x with it and
 * 1.52/1.53/1.60/1.19x without (docs/runtime.md): better in 3 of 4, by ~0.1x on average. With a CPU to
 * spare per process the default collector is kept.
 */
export function localWorkerNodeFlags(
  workers: number,
  cpus: number = os.availableParallelism(),
): { flags: string[]; reason: string } {
  if (workers + 1 > cpus) {
    return {
      flags: ['--single-threaded-gc'],
      reason: `${workers} workers and the coordinator on ${cpus} CPUs: workers run with --single-threaded-gc so V8's garbage-collector threads do not compete with training`,
    };
  }
  return { flags: [], reason: `${workers} workers on ${cpus} CPUs: default garbage collector` };
}
