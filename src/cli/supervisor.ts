/**
 * Supervision of the processes `promptmesh up` runs (nats-server, the coordinator, the workers), in the manner of
 * torchrun's elastic agent: a process that dies is started again after a backoff, within a restart budget, while
 * the others go on. The supervisor only decides and restarts; what an exit means for the job (finished, failed,
 * worth a restart) is each process's `classify`, and what the job does meanwhile is the runtime's recovery
 * protocol (survivors roll back the step in flight; a restarted coordinator resumes from what the workers hold).
 *
 * Restart policy, per process:
 * 1. An exit that `classify` calls 'restart' (killed by a signal, a crash) is restarted; 'done' (its part of the
 *    job is over) and 'fatal' (retrying cannot help: a usage error, a refusal, a failed job) are not.
 * 2. The n-th consecutive restart waits initialBackoffMs * 2^(n-1), at most maxBackoffMs, and at least the
 *    process's own minDelayMs (a worker waits out the coordinator's heartbeat timeout, so that its old self is
 *    dropped before it joins again under the same id).
 * 3. At most maxRestarts restarts; a process that then dies is given up (onGiveUp). A process that ran for
 *    healthyAfterMs since its last start has earned its budget and backoff back: a week-long job survives one
 *    failure a day, a crash loop stops after maxRestarts.
 * 4. A failed start (the binary missing, a port still taken) counts as a death.
 */
import type { ChildProcess } from 'node:child_process';

export interface RestartPolicy {
  /** Restarts allowed per process (since its last healthy run). */
  maxRestarts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** A process that ran this long since its last start gets its whole budget and the first backoff back. */
  healthyAfterMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  maxRestarts: 3,
  initialBackoffMs: 1000,
  maxBackoffMs: 30_000,
  healthyAfterMs: 10 * 60_000,
};

/** What a process's exit means (see the policy above). */
export type ExitVerdict = 'done' | 'fatal' | 'restart';

/** How a process ended: its exit code, or the signal that killed it. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function describeExit(e: ExitStatus): string {
  return e.signal ? `killed by ${e.signal}` : `exited with ${e.code}`;
}

/**
 * The restart budget of one process (steps 2 and 3 of the policy), apart from any process so it is testable
 * with a clock. `died` answers whether to restart and after how long.
 */
export class RestartBudget {
  /** Restarts since the last healthy run. */
  private restarts = 0;

  constructor(
    private readonly policy: RestartPolicy,
    private readonly minDelayMs = 0,
  ) {}

  /** The process died after running ranMs since its last start. */
  died(ranMs: number): { restart: true; attempt: number; delayMs: number } | { restart: false } {
    if (ranMs >= this.policy.healthyAfterMs) this.restarts = 0;
    if (this.restarts >= this.policy.maxRestarts) return { restart: false };
    this.restarts += 1;
    const backoff = Math.min(
      this.policy.maxBackoffMs,
      this.policy.initialBackoffMs * 2 ** (this.restarts - 1),
    );
    return { restart: true, attempt: this.restarts, delayMs: Math.max(backoff, this.minDelayMs) };
  }
}

export interface SupervisedSpec {
  /** Shown in the log: 'nats-server', 'coordinator', 'worker-0'. */
  name: string;
  /** Starts (or starts again) the process. */
  start(): ChildProcess | Promise<ChildProcess>;
  classify(e: ExitStatus): ExitVerdict;
  /** Floor of the restart delay (policy step 2). */
  minDelayMs?: number;
}

export type ProcessState = 'running' | 'restarting' | 'done' | 'fatal' | 'given-up' | 'stopped';

export interface SupervisorEvents {
  log(line: string): void;
  /** A crash that is restarted (default: log). */
  warn?(line: string): void;
  /** A process that cannot be started or restarted (default: log). */
  error?(line: string): void;
  /** A process ended for good: finished ('done'), 'fatal', or out of budget ('given-up'). */
  onEnd(p: SupervisedProcess, state: 'done' | 'fatal' | 'given-up', e: ExitStatus): void;
}

/** One supervised process: its current child and state. */
export class SupervisedProcess {
  child: ChildProcess | undefined;
  state: ProcessState = 'restarting';
  /** Times it was (re)started. */
  starts = 0;
  private startedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly budget: RestartBudget;

  constructor(
    readonly spec: SupervisedSpec,
    private readonly policy: RestartPolicy,
    private readonly events: SupervisorEvents,
    private readonly isStopping: () => boolean,
  ) {
    this.budget = new RestartBudget(policy, spec.minDelayMs ?? 0);
  }

  get name(): string {
    return this.spec.name;
  }

  /** Alive, or about to be started again. */
  get live(): boolean {
    return this.state === 'running' || this.state === 'restarting';
  }

  async start(): Promise<void> {
    if (this.isStopping()) return;
    this.startedAt = Date.now();
    let child: ChildProcess;
    try {
      child = await this.spec.start();
    } catch (e) {
      (this.events.error ?? this.events.log)(`${this.name} failed to start: ${(e as Error).message}`);
      this.onExit({ code: null, signal: null }, `failed to start`);
      return;
    }
    this.child = child;
    this.starts += 1;
    this.state = 'running';
    child.once('exit', (code, signal) => {
      if (this.child === child) this.onExit({ code, signal }, describeExit({ code, signal }));
    });
  }

  private onExit(e: ExitStatus, what: string): void {
    this.child = undefined;
    if (this.isStopping()) {
      this.state = 'stopped';
      return;
    }
    const verdict = e.code === null && e.signal === null ? 'restart' : this.spec.classify(e);
    if (verdict !== 'restart') {
      this.state = verdict;
      this.events.onEnd(this, verdict, e);
      return;
    }
    const d = this.budget.died(Date.now() - this.startedAt);
    if (!d.restart) {
      this.state = 'given-up';
      (this.events.error ?? this.events.log)(`${this.name} ${what}: out of restarts, giving up on it`);
      this.events.onEnd(this, 'given-up', e);
      return;
    }
    this.state = 'restarting';
    (this.events.warn ?? this.events.log)(
      `${this.name} ${what}: restart ${d.attempt} of the ${this.policy.maxRestarts} allowed in ${(d.delayMs / 1000).toFixed(1)} s`,
    );
    this.timer = setTimeout(() => void this.start(), d.delayMs);
  }

  /** No more restarts; the child, if any, is left to the caller to signal. */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.state === 'restarting') this.state = 'stopped';
  }

  /** Sends a signal to the running child, if any. */
  kill(signal: NodeJS.Signals): void {
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) c.kill(signal);
  }

  /** Resolves when no child runs (at once when none does). */
  exited(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => c.once('exit', () => resolve()));
  }
}

/** A group of supervised processes that stop together. */
export class Supervisor {
  private readonly procs: SupervisedProcess[] = [];
  private stopping = false;

  constructor(
    private readonly policy: RestartPolicy,
    private readonly events: SupervisorEvents,
  ) {}

  /** Adds a process and starts it. */
  async add(spec: SupervisedSpec): Promise<SupervisedProcess> {
    const p = new SupervisedProcess(spec, this.policy, this.events, () => this.stopping);
    this.procs.push(p);
    await p.start();
    return p;
  }

  get processes(): readonly SupervisedProcess[] {
    return this.procs;
  }

  /**
   * Stops restarting, signals every running child of `which` (default all), SIGKILLs those still running after
   * graceMs, and resolves when all of them exited.
   */
  async stop(
    opts: { signal?: NodeJS.Signals; graceMs?: number; which?: (p: SupervisedProcess) => boolean } = {},
  ): Promise<void> {
    this.stopRestarts();
    const targets = this.procs.filter(opts.which ?? (() => true));
    for (const p of targets) p.kill(opts.signal ?? 'SIGTERM');
    const killer = setTimeout(() => {
      for (const p of targets) p.kill('SIGKILL');
    }, opts.graceMs ?? 5000);
    await Promise.all(targets.map((p) => p.exited()));
    clearTimeout(killer);
  }

  /** From now on nothing is restarted (the job is ending). */
  stopRestarts(): void {
    this.stopping = true;
    for (const p of this.procs) p.cancel();
  }

  /** Waits up to ms for the children of `which` to exit on their own; true when they all did. */
  async settle(ms: number, which: (p: SupervisedProcess) => boolean): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((r) => {
      timer = setTimeout(() => r(false), ms);
    });
    const all = Promise.all(this.procs.filter(which).map((p) => p.exited())).then(() => true as const);
    try {
      return await Promise.race([all, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
