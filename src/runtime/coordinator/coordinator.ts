import { randomUUID } from 'node:crypto';
import type { Msg, NatsConnection, Subscription } from 'nats';
import { formatMetrics } from '../../bank/index.js';
import type { JobConfig } from '../../config/job-config.js';
import {
  checkToken,
  deriveJobKey,
  MessageOpener,
  MessageSealer,
  RefusalLog,
} from '../../control/message-auth.js';
import {
  type Control,
  decodeMessage,
  encodeMessage,
  type Heartbeat,
  inCheckpoint,
  JOB_COMPLETE,
  type JoinReply,
  type JoinRequest,
  joinReplySubject,
  type Leave,
  type Member,
  REQUIRED_FIELDS,
  type Report,
  type RestorePoint,
  subjects,
  UNAUTHENTICATED_JOIN,
} from '../../control/protocol.js';
import { MixtureSampler } from '../../data/mixture-sampler.js';
import type { Tokenizer } from '../../model/tokenizer/index.js';
import { type Logger, LogRateLimiter } from '../../telemetry/logger.js';
import type { MEMBERSHIP_REASONS } from '../../telemetry/metric-definitions.js';
import { ExampleEncoder } from '../../train/batching.js';
import {
  HistoryBuffer,
  type HistoryRecord,
  readBankHistory,
  stageScoreSummary,
} from '../../train/history.js';
import type { ProgressSink } from '../../train/progress.js';
import { loadTrainTasks } from '../../train/task-source.js';
import type { TrainTask } from '../../train/trainer.js';
import { CorruptVersionError, loadForRestore } from '../corrupt-version.js';
import type { RuntimeBank, RuntimeManifest } from '../runtime-bank.js';
import { Membership, type WorkerInfo } from './membership.js';
import { resumePoint } from './resume-point.js';
import { type CommittedStep, checkpointDue, mergeStepReports, stepProgressLine } from './step-commit.js';
import { planStep } from './step-planner.js';

export type { CommittedStep } from './step-commit.js';

export interface CoordinatorOptions {
  token: string;
  minWorkers: number;
  maxWorkers: number;
  heartbeatMs: number;
  /** A member silent for this long is declared dead. */
  heartbeatTimeoutMs: number;
  /**
   * A member the coordinator waits on whose main thread reported no progress for this long is declared hung and
   * dropped like a dead one (its heartbeats come from another thread, so they alone do not prove it works).
   * Default 600 000 (10 minutes): longer than any single phase (one shard's forward/backward, one evaluation).
   */
  progressTimeoutMs?: number;
  /** Commit a bank version every K committed steps (and at the end of each stage). */
  checkpointEvery: number;
  /** Re-send the current plan when a report is missing for this long (lost messages, NATS restarts). */
  resendMs: number;
  /** A generation whose members are not all ready within this time is re-formed. */
  formTimeoutMs: number;
  /** Consecutive failures (worker errors, re-formations) without a committed step before the job stops. */
  maxFailures: number;
  /**
   * Once minWorkers have joined, wait up to this long for maxWorkers before forming the first generation (default
   * 0: start at once). Workers started together then train together from the first step, and after a coordinator
   * restart every surviving worker re-joins, with the state it holds, before the first generation is planned.
   */
  joinGraceMs?: number;
  /**
   * Resume from this bank version (id, unique prefix, tag or JOB@head) instead of the job's head: the job's next
   * version names it as parent and moves the head from wherever it is (compare-and-set on that head).
   */
  from?: string;
  progress: ProgressSink;
  log: Logger;
  now?: () => number;
}

type StepDone = Extract<Report, { type: 'step-done' }>;

/** A flood of refused joins, or of bad messages on a subject, logs at most LOG_BURST lines per LOG_WINDOW_MS. */
const LOG_WINDOW_MS = 10_000;
const LOG_BURST = 10;

export interface CoordinatorEvents {
  onStep?(s: CommittedStep): void;
  onGeneration?(g: { generation: number; members: Member[]; reason: string }): void;
  onVersion?(v: { id: string; stage: number; step: number; final: boolean }): void;
  onMembership?(reason: (typeof MEMBERSHIP_REASONS)[number]): void;
  /** A message on a control subject ('join', 'heartbeat', 'leave', 'report') refused unauthenticated or undecodable. */
  onDropped?(subject: string): void;
}

/** Suffix of a rate-limited line that follows suppressed ones. */
function notLogged(n: number): string {
  return n > 0 ? ` (${n} more since the last such line, not logged)` : '';
}

/** Run-history bytes one checkpoint message may carry (the control plane refuses messages over 512 KiB). */
const HISTORY_MESSAGE_BYTES = 256 * 1024;

type Phase =
  | { kind: 'waiting' }
  | { kind: 'forming'; since: number; ready: Set<string> }
  | { kind: 'stepping'; step: number; sentAt: number; startedAt: number; results: Map<string, StepDone> }
  | { kind: 'checkpointing'; step: number; final: boolean; sentAt: number; after: 'continue' | 'next-stage' }
  /** After a member reported an error: re-form at `until` unless a heartbeat timeout re-forms sooner. */
  | { kind: 'backoff'; until: number; reason: string }
  | { kind: 'done' };

/**
 * The coordinator: admits workers, forms generations, plans every step's global batch and commits it, versions
 * the state in the prompt bank, and recovers from failures. It keeps no training state of its own: the replicas
 * hold it and the bank persists it, so a restarted coordinator resumes from the bank head.
 */
export class Coordinator {
  /**
   * The run history of committed steps not yet carried by a bank version (train/history.ts); the checkpoint
   * message hands them to the writer, and they are forgotten once the version is acknowledged.
   */
  private readonly history = new HistoryBuffer();
  /** How many records the last checkpoint message carried. */
  private historySent = 0;
  readonly incarnation = randomUUID();
  private readonly subj: ReturnType<typeof subjects>;
  private readonly membership: Membership;
  private generation = 0;
  private stage = 0;
  /** Number of committed steps of the current stage (= the next step to run). */
  private step = 0;
  /** The version the job continues from (the parent of the next one). */
  private head: string | null = null;
  private headStep = -1;
  /** The job's head in the bank; differs from `head` only after resuming from an older version (--from). */
  private bankHead: string | null = null;
  private stageInputs: string | undefined;
  private phase: Phase = { kind: 'waiting' };
  private subs: Subscription[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sampler: MixtureSampler | undefined;
  private tasks: TrainTask[] = [];
  private readonly encoder: ExampleEncoder;
  private finished: (ok: boolean) => void = () => {};
  readonly done: Promise<boolean>;
  private readonly now: () => number;
  private stageStarted = 0;
  /** Failures since the last committed step; a job that cannot make progress stops instead of looping. */
  private failures = 0;
  private examplesDone = 0;
  private lastCommitAt = 0;
  /** Parameter checksum of the committed state at `step`, when known (from the step results that committed it). */
  private stepChecksum: string | undefined;
  /** When minWorkers were first known (the start of the join grace), undefined before. */
  private quorumAt: number | undefined;
  /** Refused joins, which a flood of bogus ones would log without end: a few lines per window. */
  private readonly quietRefusals: LogRateLimiter;

  /** Control-plane authentication (control/message-auth.ts): seals what this coordinator sends, opens what it hears. */
  private readonly sealer: MessageSealer;
  private readonly opener: MessageOpener;
  /** Unauthenticated messages refused (logged at a bounded rate). */
  readonly refusals: RefusalLog;

  constructor(
    private readonly nc: NatsConnection,
    private readonly bank: RuntimeBank,
    private readonly job: JobConfig,
    tokenizer: Tokenizer,
    private readonly opts: CoordinatorOptions,
    private readonly events: CoordinatorEvents = {},
  ) {
    this.subj = subjects(job.jobId);
    this.now = opts.now ?? Date.now;
    const key = deriveJobKey(checkToken(opts.token), job.jobId);
    this.sealer = new MessageSealer(key, `coordinator:${this.incarnation}`);
    this.opener = new MessageOpener(key);
    this.refusals = new RefusalLog((l) => opts.log.warn(l), 5, 10_000, this.now);
    this.quietRefusals = new LogRateLimiter(LOG_WINDOW_MS, LOG_BURST, this.now);
    this.membership = new Membership({
      jobId: job.jobId,
      incarnation: this.incarnation,
      maxWorkers: opts.maxWorkers,
      heartbeatMs: opts.heartbeatMs,
      heartbeatTimeoutMs: opts.heartbeatTimeoutMs,
      progressTimeoutMs: opts.progressTimeoutMs ?? 600_000,
      now: this.now,
      log: opts.log,
      onMembership: (r) => events.onMembership?.(r),
    });
    this.encoder = new ExampleEncoder(tokenizer, {
      maxSourceLength: job.maxSourceLength,
      maxTargetLength: job.maxTargetLength,
    });
    this.done = new Promise((resolve) => {
      this.finished = resolve;
    });
  }

  /**
   * Resumes from the bank head (or the version named by `from`) when there is one (resume-point.ts), subscribes,
   * and announces itself.
   */
  async start(): Promise<void> {
    const bankHead = await this.bank.head(this.job.jobId);
    this.bankHead = bankHead?.id ?? null;
    const head = this.opts.from ? await this.bank.manifest(this.opts.from) : bankHead;
    if (head && this.opts.from && head.job !== this.job.jobId) {
      throw new Error(
        `--from ${this.opts.from}: version ${head.id.slice(0, 12)} belongs to job '${head.job}', not '${this.job.jobId}'; pass --job-id ${head.job} (or the config of that job)`,
      );
    }
    const at = resumePoint(this.job, head);
    this.stage = at.stage;
    this.step = at.step;
    this.head = at.head;
    this.headStep = at.headStep;
    this.stageInputs = at.stageInputs;
    if (this.stage >= this.job.stages.length) {
      this.opts.log(
        `job '${this.job.jobId}' already completed (bank head ${head?.id.slice(0, 12)}); nothing to do. Start a new job with --job-id ID, or list its versions with 'promptmesh bank ls'`,
      );
      this.phase = { kind: 'done' };
      this.finished(true);
      return;
    }
    if (head) {
      await this.verifyRestorable(head.id);
      this.opts.log(
        `resuming job '${this.job.jobId}' from bank version ${head.id.slice(0, 12)} (stage ${this.stage}, step ${this.step})`,
      );
    }
    this.loadStage();
    const on = (subject: string, fn: (m: Msg) => void) => {
      // One limiter per subject (a handful, all ours), so garbage on one does not hide what arrives on another.
      const quiet = new LogRateLimiter(LOG_WINDOW_MS, LOG_BURST, this.now);
      this.subs.push(
        this.nc.subscribe(subject, {
          callback: (err, m) => {
            if (err) return;
            try {
              fn(m);
            } catch (e) {
              // A bad request must never take the coordinator down, nor a flood of them fill the disk with logs.
              this.events.onDropped?.(subject.slice(subject.lastIndexOf('.') + 1));
              const unlogged = quiet.take();
              if (unlogged !== undefined)
                this.opts.log.warn(
                  `dropped a bad message on ${subject}: ${(e as Error).message}${notLogged(unlogged)}`,
                );
            }
          },
        }),
      );
    };
    on(this.subj.join, (m) => this.onJoin(m));
    on(this.subj.heartbeat, (m) => {
      const body = this.open(this.subj.heartbeat, m.data);
      if (body) this.onHeartbeat(decodeMessage<Heartbeat>(body, ['heartbeat'], REQUIRED_FIELDS));
    });
    on(this.subj.leave, (m) => {
      const body = this.open(this.subj.leave, m.data);
      if (body) this.onLeave(decodeMessage<Leave>(body, ['leave'], REQUIRED_FIELDS));
    });
    on(this.subj.report, (m) => {
      const body = this.open(this.subj.report, m.data);
      if (body) {
        this.onReport(
          decodeMessage<Report>(body, ['ready', 'step-done', 'checkpoint-done', 'error'], REQUIRED_FIELDS),
        );
      }
    });
    this.publish({ type: 'hello', incarnation: this.incarnation });
    this.timer = setInterval(() => this.tick(), 100);
  }

  /**
   * Reads every blob the first generation will restore (the resume point, and the stage's inputs) and checks its
   * digest, so a corrupt version stops the coordinator here with a CorruptVersionError, before any worker spends
   * a generation on it. Any other read failure is left to the workers' retries.
   */
  private async verifyRestorable(resumePoint: string): Promise<void> {
    const role = this.opts.from
      ? `--from ${this.opts.from}, the version job '${this.job.jobId}' resumes from`
      : `the bank head job '${this.job.jobId}' resumes from`;
    const checks: [string, string][] = [[resumePoint, role]];
    if (this.stageInputs && this.stageInputs !== resumePoint)
      checks.push([this.stageInputs, `the inputs of stage ${this.stage}`]);
    for (const [version, what] of checks) {
      try {
        await loadForRestore(this.bank, this.job.jobId, version, what);
      } catch (e) {
        if (e instanceof CorruptVersionError) throw e;
      }
    }
  }

  private loadStage(): void {
    const stage = this.job.stages[this.stage]!;
    this.tasks = loadTrainTasks(this.job.data, stage.tasks);
    this.sampler = new MixtureSampler(
      this.tasks.map((t) => ({ name: t.name, size: t.train.length })),
      { batchSize: stage.train.batchSize, seed: stage.train.seed, ...stage.train.mixing },
    );
    this.stageStarted = this.now();
    this.examplesDone = 0;
  }

  private publish(msg: Control): void {
    if (this.nc.isClosed() || this.nc.isDraining()) return;
    try {
      this.nc.publish(this.subj.ctl, this.sealer.seal(this.subj.ctl, msg));
    } catch (err) {
      this.opts.log(`could not publish ${msg.type}: ${(err as Error).message}`);
    }
  }

  /** The body of an authenticated message, or undefined (refused: counted, logged at a bounded rate). */
  private open(subject: string, data: Uint8Array): Uint8Array | undefined {
    return this.openSealed(subject, data)?.body;
  }

  private openSealed(subject: string, data: Uint8Array): ReturnType<MessageOpener['open']> | undefined {
    try {
      return this.opener.open(subject, data);
    } catch (e) {
      this.events.onDropped?.(subject.slice(subject.lastIndexOf('.') + 1));
      this.refusals.refused(`a message on ${subject}`, (e as Error).message);
      return undefined;
    }
  }

  /**
   * Admission: the request must be sealed with the job key (proof that the worker holds the join token, which is
   * never sent), then right job, right protocol, room in the world, not a duplicate of a live member. An
   * unauthenticated request gets an unsealed, generic refusal (no generation, no ranks): the worker shows it as a
   * hint but cannot act on it, since anyone could have sent it.
   */
  private onJoin(m: Msg): void {
    const sealed = this.openSealed(this.subj.join, m.data);
    if (!sealed) {
      this.events.onMembership?.('refused');
      m.respond(encodeMessage({ type: 'refused', reason: UNAUTHENTICATED_JOIN } satisfies JoinReply));
      return;
    }
    let reply: JoinReply;
    try {
      const req = decodeMessage<JoinRequest>(sealed.body, ['join'], REQUIRED_FIELDS);
      reply = this.membership.admit(req);
    } catch (e) {
      reply = { type: 'refused', reason: `malformed join request: ${(e as Error).message}` };
    }
    if (reply.type === 'refused') {
      // Counted every time (promptmesh_membership_changes_total{reason="refused"}), logged a few times a window.
      this.events.onMembership?.('refused');
      const unlogged = this.quietRefusals.take();
      if (unlogged !== undefined)
        this.opts.log.warn(`refused a worker: ${reply.reason}${notLogged(unlogged)}`);
    }
    m.respond(this.sealer.seal(joinReplySubject(this.subj.join, sealed.sender, sealed.seq), reply));
  }

  /**
   * A heartbeat of this incarnation. From a worker that is not known (dropped while alive: it missed heartbeats
   * during a pause or a NATS outage, or made no progress): tell it so, rate-limited, so that it joins again and
   * becomes a member of the next generation.
   */
  private onHeartbeat(h: Heartbeat): void {
    if (h.incarnation !== this.incarnation) return;
    if (this.membership.heartbeat(h) || this.phase.kind === 'done') return;
    if (!this.membership.shouldTellRejoin(h.workerId)) return;
    this.publish({
      type: 'rejoin',
      incarnation: this.incarnation,
      workerId: h.workerId,
      reason: 'dropped from the job after missing heartbeats or making no progress',
    });
  }

  private onLeave(l: Leave): void {
    if (l.incarnation !== this.incarnation) return;
    if (this.membership.leave(l.workerId, l.reason)) this.reform(`worker ${l.workerId} left`);
  }

  private isMember(id: string): boolean {
    return this.membership.isMember(id);
  }

  private get members(): Member[] {
    return this.membership.members;
  }

  private set members(m: Member[]) {
    this.membership.members = m;
  }

  private onReport(r: Report): void {
    if (r.incarnation !== this.incarnation || r.generation !== this.generation || !this.isMember(r.workerId))
      return;
    this.membership.seen(r.workerId);
    const p = this.phase;
    switch (r.type) {
      case 'ready':
        // A repeated 'ready' (the worker re-sent it) must not resume the generation a second time.
        if (p.kind === 'forming' && !p.ready.has(r.workerId)) {
          p.ready.add(r.workerId);
          if (p.ready.size === this.members.length) void this.resume(p);
        }
        return;
      case 'error':
        this.opts.log.warn(`worker ${r.workerId} failed at step ${r.step}: ${r.error}`);
        this.events.onMembership?.('failed');
        if (r.fatal === true) {
          this.fail(`stopping the job: worker ${r.workerId} hit an error that retrying cannot fix`);
          return;
        }
        // Every member of a broken collective reports; one failure per generation is counted.
        if (p.kind === 'backoff') return;
        if (++this.failures > this.opts.maxFailures) {
          this.fail(`giving up after ${this.failures} consecutive failures; last: ${r.error}`);
          return;
        }
        // A collective error usually means a peer died and its heartbeat timeout has not fired yet: re-forming at
        // once would hand the survivors the dead peer's address again and burn through maxFailures in a second.
        this.phase = {
          kind: 'backoff',
          until: this.now() + this.opts.heartbeatTimeoutMs + this.opts.heartbeatMs,
          reason: `worker ${r.workerId} reported: ${r.error}`,
        };
        return;
      case 'step-done':
        if (p.kind === 'stepping' && r.step === p.step && r.stage === this.stage) {
          p.results.set(r.workerId, r);
          if (p.results.size === this.members.length) this.commitStep(p);
        }
        return;
      case 'checkpoint-done':
        if (p.kind === 'checkpointing' && r.stage === this.stage && r.step === p.step)
          void this.onCheckpointDone(r.version, p);
        return;
    }
  }

  /**
   * Membership check and resends, every 100 ms:
   * 1. A member silent for heartbeatTimeoutMs is dead: drop it and re-form the generation.
   * 2. Waiting with enough live workers: form a generation.
   * 3. A generation not fully ready in formTimeoutMs is re-formed (a member may have died while forming).
   * 4. A step or checkpoint whose reports are missing after resendMs is re-sent (workers answer repeats from memory).
   * 5. After a member's error report, re-form once the backoff (heartbeat timeout + one beat) is over; a member
   *    that died is dropped by 1. before that, so the new generation does not include it.
   */
  private tick(): void {
    const now = this.now();
    for (const { workerId, reason } of this.membership.expired((id) => this.waitsOn(id))) {
      if (this.membership.drop(workerId)) this.reform(reason);
    }
    const p = this.phase;
    if (p.kind === 'waiting') {
      if (this.membership.size >= this.opts.minWorkers && this.graceOver(now))
        void this.formGeneration('start');
      else if (now % 2000 < 100) this.publish({ type: 'hello', incarnation: this.incarnation });
    } else if (p.kind === 'forming' && now - p.since > this.opts.formTimeoutMs) {
      this.reform('generation did not become ready in time');
    } else if (p.kind === 'stepping' && now - p.sentAt > this.opts.resendMs) {
      p.sentAt = now;
      this.publish(this.stepMessage(p.step));
    } else if (p.kind === 'checkpointing' && now - p.sentAt > this.opts.resendMs * 4) {
      p.sentAt = now;
      if (!this.rankZeroWorksOn(p.step, now)) this.sendCheckpoint(p.step, p.final);
    } else if (p.kind === 'backoff' && now >= p.until) {
      this.reform(p.reason);
    }
  }

  /**
   * Whether rank 0's heartbeats say it is writing (or evaluating for) the checkpoint at `step` and its main thread
   * moved within the re-send interval: then it has the request, and a re-send would only queue a repeat behind the
   * write (a long evaluation drew one every 12 s). Once it reports `written`, or goes quiet, re-sending resumes: the
   * request or its answer may have been lost.
   */
  private rankZeroWorksOn(step: number, now: number): boolean {
    const w = this.members[0] && this.membership.get(this.members[0].workerId);
    return !!w?.phase && now - w.progressAt <= this.opts.resendMs * 4 && inCheckpoint(w.phase, step);
  }

  /**
   * The first generation of this incarnation waits for maxWorkers at most joinGraceMs after minWorkers joined;
   * later generations form at once (the job is running, and newcomers join at the next bank version).
   */
  private graceOver(now: number): boolean {
    if (this.generation > 0 || this.membership.size >= this.opts.maxWorkers) return true;
    this.quorumAt ??= now;
    return now - this.quorumAt >= (this.opts.joinGraceMs ?? 0);
  }

  /**
   * After a coordinator restart the replicas may be ahead of the bank head: they kept training until this
   * coordinator's predecessor died. Before the first generation, continue from the latest state that the
   * re-joined workers hold (same stage, same inputs, one checksum at that step) instead of redoing every step
   * since the head, so a lost coordinator costs at most the step in flight. Not with --from: that names the point.
   */
  private adoptHeldState(live: WorkerInfo[]): void {
    if (this.generation !== 1 || this.opts.from) return;
    const stageSteps = this.job.stages[this.stage]!.train.steps;
    const byStep = new Map<number, Set<string>>();
    for (const w of live) {
      const h = w.holds;
      if (!h || h.stage !== this.stage || (h.inputs ?? undefined) !== this.stageInputs) continue;
      for (const s of h.states) {
        if (s.step <= this.step || s.step > stageSteps) continue;
        const sums = byStep.get(s.step) ?? new Set<string>();
        sums.add(s.checksum);
        byStep.set(s.step, sums);
      }
    }
    // The latest step whose holders agree; a step held with two checksums is ambiguous and skipped.
    const step = [...byStep.keys()].sort((a, b) => b - a).find((s) => byStep.get(s)!.size === 1);
    if (step === undefined) return;
    this.opts.log(
      `re-joined workers hold stage ${this.stage} step ${step} (${this.head ? `the bank head is at step ${this.headStep}` : 'no bank version yet'}): continuing from their memory`,
    );
    this.step = step;
    this.stepChecksum = [...byStep.get(step)!][0]!;
  }

  /** Whether the current phase waits on this worker's main thread (a member not yet ready, reported or saved). */
  private waitsOn(workerId: string): boolean {
    const p = this.phase;
    if (!this.isMember(workerId)) return false;
    if (p.kind === 'forming') return !p.ready.has(workerId);
    if (p.kind === 'stepping') return !p.results.has(workerId);
    if (p.kind === 'checkpointing') return this.members[0]?.workerId === workerId;
    return false;
  }

  /** A re-joined worker holds the committed state at `step` of this stage (same inputs, same checksum). */
  private holdsCommitted(w: WorkerInfo): boolean {
    const h = w.holds;
    return (
      h !== undefined &&
      this.stepChecksum !== undefined &&
      h.stage === this.stage &&
      (h.inputs ?? undefined) === this.stageInputs &&
      h.states.some((s) => s.step === this.step && s.checksum === this.stepChecksum)
    );
  }

  private reform(reason: string): void {
    if (this.phase.kind === 'done') return;
    this.phase = { kind: 'waiting' };
    if (this.membership.size >= this.opts.minWorkers) void this.formGeneration(reason);
    else
      this.opts.log(`${reason}; waiting for ${this.opts.minWorkers - this.membership.size} more worker(s)`);
  }

  /**
   * Forming generation g+1 (recovery protocol, coordinator side):
   * 1. Bump the generation: every message of the old one is now ignored by everyone (fencing).
   * 2. Members = live workers in join order, ranks 0..N-1 (the ring order), at most maxWorkers.
   * 3. The generation restarts at the first uncommitted step. Workers that hold the committed state (survivors)
   *    restore it from memory; the others load the bank head, so a version at that step is needed when the
   *    head is older. The state of a step is never lost while one survivor holds it.
   * 4. Each member forms the collective and reports ready; then the step is (re-)planned with the same global batch.
   */
  private async formGeneration(reason: string): Promise<void> {
    this.generation += 1;
    const live = this.membership.live();
    this.adoptHeldState(live);
    const holds = (w: WorkerInfo) => this.isMember(w.workerId) || this.holdsCommitted(w);
    const newcomers = live.filter((w) => !holds(w));
    const survivors = live.filter(holds);
    for (const w of live) delete w.holds;
    this.members = live.map((w, rank) => ({ workerId: w.workerId, rank, address: w.address }));
    let restore: RestorePoint = this.head ? { kind: 'bank', version: this.head } : { kind: 'fresh' };
    if (this.head && this.headStep !== this.step) restore = { kind: 'fresh' };
    if (this.step > 0 && this.headStep !== this.step && newcomers.length > 0 && survivors.length > 0) {
      // Newcomers need the committed state: have a survivor write it first (a generation of survivors only).
      this.members = survivors.map((w, rank) => ({ workerId: w.workerId, rank, address: w.address }));
    }
    if (this.step > 0 && this.headStep !== this.step && survivors.length === 0) {
      // Nobody holds the committed state any more: fall back to the last bank version and redo the steps since.
      this.opts.log(
        `no survivor holds step ${this.step}; rolling back to the bank head at step ${this.headStep}`,
      );
      this.step = Math.max(0, this.headStep);
      this.stepChecksum = undefined;
      restore = this.head && this.headStep >= 0 ? { kind: 'bank', version: this.head } : { kind: 'fresh' };
    }
    this.phase = { kind: 'forming', since: this.now(), ready: new Set() };
    this.opts.log(
      `generation ${this.generation} (${reason}): ${this.members.map((m) => m.workerId).join(', ')} from step ${this.step}`,
    );
    this.events.onGeneration?.({ generation: this.generation, members: this.members, reason });
    this.publish({
      type: 'generation',
      incarnation: this.incarnation,
      generation: this.generation,
      stage: this.stage,
      members: this.members,
      step: this.step,
      restore,
      memory: this.members.map((m) => m.workerId).filter((id) => survivors.some((w) => w.workerId === id)),
      ...(this.stageInputs ? { inputs: this.stageInputs } : {}),
    });
  }

  /** The plan of step s for the current members (step-planner.ts has the protocol's steps). */
  private stepMessage(step: number): Control {
    const stage = this.job.stages[this.stage]!;
    const plan = planStep(
      stage,
      this.sampler!.globalBatch(step),
      (b) => {
        const ex = this.tasks[b.taskIndex]!.train[b.index]!;
        return this.encoder.encode(`${b.task}/train/${b.index}`, b.task, ex.source, ex.target).source.length;
      },
      this.members.length,
    );
    return {
      type: 'step',
      incarnation: this.incarnation,
      generation: this.generation,
      stage: this.stage,
      step,
      units: plan.units,
      owners: plan.owners,
      touched: plan.touched,
    };
  }

  /**
   * A generation is ready. If the state it starts from is due a bank version that was never acknowledged (rank 0
   * or the coordinator died while checkpointing), that version comes first: a stage's final version, every K-th
   * step's and every evaluation step's are never skipped. When the dead rank 0 did write it (the bank head moved to
   * it), it is taken as written; rewriting it would fail the head's compare-and-set. Otherwise plan the next step.
   */
  private async resume(forming: Phase): Promise<void> {
    const { steps, evalEvery } = this.job.stages[this.stage]!.train;
    const due = this.step > 0 && this.headStep !== this.step;
    const final = this.step >= steps;
    if (!due || !checkpointDue(this.step, steps, this.opts.checkpointEvery, evalEvery)) {
      this.sendStep();
      return;
    }
    const generation = this.generation;
    const written = await this.bank.head(this.job.jobId).catch(() => undefined);
    if (this.generation !== generation || this.phase !== forming) return;
    const phase: Extract<Phase, { kind: 'checkpointing' }> = {
      kind: 'checkpointing',
      step: this.step,
      final,
      sentAt: this.now(),
      after: final ? 'next-stage' : 'continue',
    };
    this.phase = phase;
    if (
      written &&
      written.id !== this.bankHead &&
      written.parent === this.head &&
      written.step === this.step &&
      Number(written.extra?.stage ?? -1) === this.stage
    ) {
      await this.onCheckpointDone(written.id, phase);
      return;
    }
    this.sendCheckpoint(this.step, final);
  }

  private sendStep(): void {
    if (this.step >= this.job.stages[this.stage]!.train.steps) {
      this.finishStage();
      return;
    }
    const now = this.now();
    this.phase = { kind: 'stepping', step: this.step, sentAt: now, startedAt: now, results: new Map() };
    this.publish(this.stepMessage(this.step));
  }

  /**
   * Committing step s:
   * 1. Every member reported; their parameter checksums must agree (replicas identical), else re-form from the
   *    bank.
   * 2. The step counts as done: losses and timings go to progress and metrics.
   * 3. Every checkpointEvery steps, rank 0 writes a bank version; the stage's last step is always versioned.
   */
  private commitStep(p: Extract<Phase, { kind: 'stepping' }>): void {
    const now = this.now();
    const committed = mergeStepReports([...p.results.values()], {
      stage: this.stage,
      step: p.step,
      generation: this.generation,
      worldSize: this.members.length,
      ms: now - p.startedAt,
    });
    if ('diverged' in committed) {
      this.opts.log(
        `replicas diverged at step ${p.step} (checksums ${committed.diverged.join(', ')}); restoring from the bank`,
      );
      this.step = Math.max(0, this.headStep);
      this.stepChecksum = undefined;
      this.members = [];
      this.reform('replica divergence');
      return;
    }
    this.step = p.step + 1;
    this.stepChecksum = p.results.values().next().value!.checksum;
    this.failures = 0;
    this.examplesDone += committed.examples;
    this.lastCommitAt = now;
    this.events.onStep?.(committed);
    const stage = this.job.stages[this.stage]!;
    this.recordStep(stage.name, committed, p.results.values().next().value!);
    const rate = this.examplesDone / Math.max(1e-9, (now - this.stageStarted) / 1000);
    this.opts.progress.update(stepProgressLine(committed, { name: stage.name, ...stage.train }, rate));
    const last = this.step >= stage.train.steps;
    if (checkpointDue(this.step, stage.train.steps, this.opts.checkpointEvery, stage.train.evalEvery)) {
      this.phase = {
        kind: 'checkpointing',
        step: this.step,
        final: last,
        sentAt: now,
        after: last ? 'next-stage' : 'continue',
      };
      this.sendCheckpoint(this.step, last);
    } else {
      this.sendStep();
    }
  }

  /** Step 2 of commitStep, for the run history: a redone step replaces what its first try recorded. */
  private recordStep(stage: string, c: CommittedStep, report: StepDone): void {
    this.history.rollBack(stage, c.step);
    this.history.push({
      kind: 'step',
      stage,
      step: c.step + 1,
      loss: c.loss,
      tasks: c.perTask,
      lr: report.lr ?? {},
      gradNorm: report.gradNorm ?? Number.NaN,
      examples: c.examples,
      examplesPerSecond: c.ms > 0 ? (c.examples * 1000) / c.ms : 0,
      time: new Date(this.now()).toISOString(),
    });
  }

  /** The history records the next version carries, oldest dropped beyond HISTORY_MESSAGE_BYTES (with a log line). */
  private historyForCheckpoint(): HistoryRecord[] {
    const records = this.history.take();
    let bytes = records.reduce((a, r) => a + JSON.stringify(r).length + 1, 0);
    let drop = 0;
    while (bytes > HISTORY_MESSAGE_BYTES && drop < records.length)
      bytes -= JSON.stringify(records[drop++]).length + 1;
    if (drop > 0) {
      this.opts.log(
        `run history: ${drop} of ${records.length} step records since the last version exceed the control message budget and are not kept (checkpoint more often: --checkpoint-every)`,
      );
    }
    this.historySent = records.length;
    return records.slice(drop);
  }

  private sendCheckpoint(step: number, final: boolean): void {
    this.publish({
      type: 'checkpoint',
      incarnation: this.incarnation,
      generation: this.generation,
      stage: this.stage,
      step,
      workerId: this.members[0]!.workerId,
      parent: this.head,
      ...(this.bankHead !== this.head ? { expectHead: this.bankHead } : {}),
      final,
      history: this.historyForCheckpoint(),
    });
  }

  private async onCheckpointDone(
    version: string,
    p: Extract<Phase, { kind: 'checkpointing' }>,
  ): Promise<void> {
    let manifest: RuntimeManifest;
    try {
      manifest = await this.bank.manifest(version);
    } catch (e) {
      this.opts.log(
        `checkpoint ${version} is not readable from the bank (${(e as Error).message}); retrying`,
      );
      return;
    }
    // Only the first report of this checkpoint acts: a repeat (the worker answers each re-send of the request) can
    // arrive while this one reads the manifest, and acting on both would finish the stage twice, skipping the next.
    if (this.phase !== p || manifest.step !== p.step) return;
    this.history.committed(this.historySent);
    this.historySent = 0;
    this.head = manifest.id;
    this.bankHead = manifest.id;
    this.headStep = p.step;
    const best = manifest.extra?.best as { step?: unknown } | undefined;
    const final = p.final
      ? ` (stage final${typeof best?.step === 'number' ? `, the state and scores of step ${best.step}, the stage's best` : ''})`
      : '';
    this.opts.progress.log(
      `bank version ${manifest.id.slice(0, 12)} committed at stage ${this.stage} step ${p.step}${final}${Object.keys(manifest.metrics).length > 0 ? `: ${formatMetrics(manifest.metrics)}` : ''}`,
    );
    this.events.onVersion?.({ id: manifest.id, stage: this.stage, step: p.step, final: p.final });
    if (p.after === 'next-stage') this.finishStage();
    else if (this.members.length < Math.min(this.membership.size, this.opts.maxWorkers))
      this.reform('workers waiting to join');
    else this.sendStep();
  }

  private finishStage(): void {
    this.opts.progress.done();
    this.stage += 1;
    if (this.stage >= this.job.stages.length) {
      this.phase = { kind: 'done' };
      void this.complete();
      return;
    }
    this.stageInputs = this.head ?? undefined;
    this.step = 0;
    this.stepChecksum = undefined;
    this.headStep = -1;
    this.loadStage();
    this.members = [];
    this.reform(`stage ${this.job.stages[this.stage]!.name}`);
  }

  /**
   * The job is complete: say what training changed (the stages' untrained -> trained scores, from the run history
   * the versions carry, for stages with `evalAtStart`), then stop the workers.
   */
  private async complete(): Promise<void> {
    if (this.head) {
      try {
        const { records } = await readBankHistory(this.bank, this.head);
        for (const line of stageScoreSummary(records, this.job.stages)) this.opts.log(line);
      } catch (e) {
        this.opts.log.warn(
          `cannot read the job's run history for its score summary: ${(e as Error).message}`,
        );
      }
    }
    this.opts.log(`job '${this.job.jobId}' complete; bank head ${this.head?.slice(0, 12)}`);
    this.publish({ type: 'stop', incarnation: this.incarnation, reason: JOB_COMPLETE });
    this.finished(true);
  }

  private fail(reason: string): void {
    this.opts.log.error(reason);
    this.phase = { kind: 'done' };
    this.publish({ type: 'stop', incarnation: this.incarnation, reason });
    this.finished(false);
  }

  get status() {
    return {
      incarnation: this.incarnation,
      generation: this.generation,
      stage: this.stage,
      step: this.step,
      members: this.members.length,
      workers: this.membership.size,
      head: this.head,
      phase: this.phase.kind,
      lastCommitAt: this.lastCommitAt,
    };
  }

  /**
   * Stops this incarnation. `tellWorkers: false` leaves the workers running: they keep their state and re-join
   * the next incarnation (a coordinator replaced by its supervisor), instead of being stopped with the job.
   */
  async stop(reason = 'coordinator stopping', opts: { tellWorkers?: boolean } = {}): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    if (this.phase.kind !== 'done') {
      if (opts.tellWorkers ?? true) this.publish({ type: 'stop', incarnation: this.incarnation, reason });
      this.phase = { kind: 'done' };
      this.finished(false);
    }
    await this.nc.flush().catch(() => {});
  }
}
