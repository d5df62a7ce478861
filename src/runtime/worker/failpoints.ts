/**
 * Fault injection for the runtime's own tests, off unless the environment asks for it. The tests that prove a
 * fault is survived need the fault itself, and some cannot be made from outside a process: a main thread stuck in
 * a computation while its heartbeat thread keeps beating (SIGSTOP would stop both).
 *
 *   PROMPTMESH_FAILPOINT=hang-at-step:N   the worker's main thread spins forever when it starts a step >= N
 *   PROMPTMESH_FAILPOINT=fail-at-step:N   the first step N the worker starts fails with an error (once)
 *   PROMPTMESH_FAILPOINT=slow-eval-batch:MS   every evaluation batch blocks the main thread MS ms longer (a large
 *                                          validation set on a slow device)
 *   PROMPTMESH_FAILPOINT=repeat-reports   every report to the coordinator is sent twice, sealed twice (what the
 *                                          coordinator sees when it re-sends a request and the worker answers the
 *                                          repeat from memory while the first answer is still on its way)
 */
const spec = process.env.PROMPTMESH_FAILPOINT ?? '';
const hangAt = /^hang-at-step:(\d+)$/.exec(spec);
const failAt = /^fail-at-step:(\d+)$/.exec(spec);
const slowEval = /^slow-eval-batch:(\d+)$/.exec(spec);
const repeat = spec === 'repeat-reports';
let failed = false;
let slowLogged = false;

/** Throws a FailpointError the first time step N starts when PROMPTMESH_FAILPOINT=fail-at-step:N. */
export function failIfAsked(step: number): void {
  if (!failAt || failed || step !== Number(failAt[1])) return;
  failed = true;
  throw new FailpointError(`failpoint: step ${step} fails (PROMPTMESH_FAILPOINT=${spec})`);
}

export class FailpointError extends Error {
  override name = 'FailpointError';
}

/** Spins the main thread forever at the first step >= N when PROMPTMESH_FAILPOINT=hang-at-step:N. */
export function hangIfAsked(step: number, log: (line: string) => void): void {
  if (!hangAt || step < Number(hangAt[1])) return;
  log(`failpoint: hanging the main thread at step ${step} (PROMPTMESH_FAILPOINT=${spec})`);
  for (;;) {
    // A stuck computation: no await, no I/O, the event loop never runs again.
  }
}

/** Blocks the main thread MS ms (no event loop, as a computation would) when PROMPTMESH_FAILPOINT=slow-eval-batch:MS. */
export function slowEvalBatchIfAsked(log: (line: string) => void): void {
  if (!slowEval) return;
  if (!slowLogged) {
    slowLogged = true;
    log(`failpoint: every evaluation batch takes ${slowEval[1]} ms longer (PROMPTMESH_FAILPOINT=${spec})`);
  }
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(slowEval[1]));
}

/** How many times each report is sent: 2 when PROMPTMESH_FAILPOINT=repeat-reports, else 1. */
export function reportCopies(): number {
  return repeat ? 2 : 1;
}
