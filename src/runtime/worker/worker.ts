import * as os from 'node:os';
import type { NatsConnection, Subscription } from 'nats';
import {
  type Collective,
  type CollectiveStats,
  createCollective,
  GrpcTransport,
  type TlsFiles,
} from '../../collective/index.js';
import {
  encodeJobConfig,
  JOB_ATTACHMENT,
  type JobConfig,
  type StageConfig,
} from '../../config/job-config.js';
import {
  checkToken,
  deriveGenerationKey,
  deriveJobKey,
  MessageOpener,
  MessageSealer,
  RefusalLog,
} from '../../control/message-auth.js';
import {
  type CheckpointMsg,
  type Control,
  checkpointPhase,
  decodeMessage,
  evaluatingPhase,
  type GenerationMsg,
  type HeldState,
  type JoinReply,
  type JoinRequest,
  joinReplySubject,
  PROTOCOL_VERSION,
  REQUIRED_FIELDS,
  type Report,
  type StepMsg,
  subjects,
  UNAUTHENTICATED_JOIN,
} from '../../control/protocol.js';
import type { PromptMethod } from '../../methods/index.js';
import { type BackboneIdentity, backboneIdentity } from '../../model/checkpoint/identity.js';
import type { T5Model } from '../../model/t5/index.js';
import type { Tokenizer } from '../../model/tokenizer/index.js';
import { type Logger, LogRateLimiter } from '../../telemetry/logger.js';
import { ExampleEncoder } from '../../train/batching.js';
import {
  encodeHistory,
  evalRecord,
  HISTORY_ATTACHMENT,
  HISTORY_MEDIA_TYPE,
  type HistoryRecord,
} from '../../train/history.js';
import { silentProgress } from '../../train/progress.js';
import { createStageMethod, trainerOptions } from '../../train/run-job.js';
import type { StepPlan } from '../../train/step-plan.js';
import { loadStageTasks } from '../../train/task-source.js';
import { type EvalReport, formatEvalScores, Trainer } from '../../train/trainer.js';
import { CollectiveReducer } from '../collective-reducer.js';
import { CorruptVersionError, loadForRestore } from '../corrupt-version.js';
import { ReplicaState, stateFromTensors, stateTensors, type TensorMap } from '../replica-state.js';
import type { RuntimeBank } from '../runtime-bank.js';
import { failIfAsked, hangIfAsked, reportCopies, slowEvalBatchIfAsked } from './failpoints.js';
import { type HeartbeatSender, timerHeartbeat } from './heartbeat.js';
import {
  describeJoinFailure,
  JOIN_NOTICE_EVERY_MS,
  JOIN_NOTICE_FIRST_MS,
  JoinTimeoutError,
  type JoinWait,
  stillWaitingMessage,
} from './join-wait.js';
import { listenWithRetry } from './listen-retry.js';

export interface WorkerOptions {
  workerId: string;
  token: string;
  /** Collective listener host (default 127.0.0.1) and port (0 = any; kept for every later generation). */
  host: string;
  port: number;
  /** Address peers should dial (default host:port as bound). */
  advertise?: string;
  heartbeatMs: number;
  collectiveTimeoutMs: number;
  tls?: TlsFiles;
  /** Stop with a JoinTimeoutError when no coordinator admits the worker within this time (0 or unset: never). */
  joinTimeoutMs?: number;
  log: Logger;
}

/** Observers of a worker (metrics); every hook is optional and must not throw. */
/** How long a worker keeps retrying a checkpoint write that storage may recover from. */
const CHECKPOINT_RETRY_MS = 120_000;

/** Why a bank write failed, when it is a storage condition that can clear (else undefined: not retried). */
function storageFailure(e: unknown): 'disk_full' | 'io_error' | 'lock_timeout' | undefined {
  for (let c: unknown = e; c; c = (c as { cause?: unknown }).cause) {
    const code = (c as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return 'disk_full';
    if (code === 'EIO' || code === 'EROFS' || code === 'EAGAIN' || code === 'EBUSY') return 'io_error';
    if ((c as Error).name === 'BankLockTimeoutError') return 'lock_timeout';
    if (/ENOSPC|no space left/i.test((c as Error).message ?? '')) return 'disk_full';
  }
  return undefined;
}

export interface WorkerEvents {
  onGeneration?(g: { generation: number; rank: number; worldSize: number }): void;
  onStep?(result: StepDone, collective: CollectiveStats): void;
  onCheckpoint?(c: { version: string; step: number; final: boolean; seconds: number }): void;
  /** A bank write failed; `reason` is one of CHECKPOINT_FAILURE_REASONS. */
  onCheckpointFailure?(reason: string): void;
  onEval?(e: EvalReport): void;
}

interface StageRuntime {
  index: number;
  stage: StageConfig;
  method: PromptMethod;
  trainer: Trainer;
  /** The live state and the last committed snapshot (the start of the step in flight). */
  replica: ReplicaState;
  inputsVersion: string | undefined;
}

type StepDone = Extract<Report, { type: 'step-done' }>;

/** A stage's bank version written at an evaluation step, with what it scored. */
interface BestVersion {
  id: string;
  step: number;
  average: number;
  metrics: Record<string, number>;
  adamSteps: Record<string, number>;
}

/** How the heartbeat names the phases of Trainer.step (the coordinator logs them for a hung worker). */
const PHASE_NAMES = {
  'forward-backward': 'forward/backward',
  reduce: 'all-reduce',
  update: 'update',
} as const;

/**
 * A worker: joins the job over NATS, then for each generation forms the collective with its peers and, for each
 * step the coordinator plans, computes gradient sums on its shard, all-reduces them, applies the identical update
 * and reports loss, counts and a parameter checksum. Control messages are handled strictly one at a time, in order.
 */
export class Worker {
  private incarnation: string | undefined;
  private generation = -1;
  private rank = -1;
  private collective: Collective | undefined;
  private listener: GrpcTransport | undefined;
  private port: number;
  private stageRt: StageRuntime | undefined;
  private reducer: CollectiveReducer | undefined;
  private lastResult: StepDone | undefined;
  private queue: Promise<void> = Promise.resolve();
  private subs: Subscription[] = [];
  private stopped: (reason: string) => void = () => {};
  readonly done: Promise<string>;
  private readonly encoder: ExampleEncoder;
  private readonly subj: ReturnType<typeof subjects>;
  /** The join in progress, if any (join()). */
  private joining: Promise<void> | undefined;
  private readonly heartbeat: HeartbeatSender;
  private stopping = false;
  private failure: Error | undefined;
  private backbone: Promise<BackboneIdentity> | undefined;
  /** The last bank version this worker wrote, to answer a repeated checkpoint message without writing again. */
  private lastCheckpoint: { stage: number; step: number; parent: string | null; version: string } | undefined;
  /** Main-thread progress, sent with every heartbeat (see Heartbeat.progress). */
  private progress = 0;
  private phase = 'joining';
  private liveness: NodeJS.Timeout | undefined;
  private readonly quietMalformed = new LogRateLimiter(10_000, 5);
  /** The last collective close (and re-listen) in progress; see closeCollective. */
  private closing: Promise<void> = Promise.resolve();

  /** Control-plane authentication (control/message-auth.ts). */
  private readonly key: Buffer;
  private readonly sealer: MessageSealer;
  private readonly opener: MessageOpener;
  private readonly replyOpener: MessageOpener;
  /** Unauthenticated messages refused (logged at a bounded rate). */
  readonly refusals: RefusalLog;

  constructor(
    private readonly nc: NatsConnection,
    private readonly bank: RuntimeBank,
    private readonly job: JobConfig,
    private readonly model: T5Model,
    tokenizer: Tokenizer,
    private readonly opts: WorkerOptions,
    heartbeat?: HeartbeatSender,
    private readonly events: WorkerEvents = {},
  ) {
    this.key = deriveJobKey(checkToken(opts.token), job.jobId);
    this.sealer = new MessageSealer(this.key, `worker:${opts.workerId}`);
    this.opener = new MessageOpener(this.key);
    this.replyOpener = new MessageOpener(this.key);
    this.refusals = new RefusalLog((l) => opts.log.warn(l));
    this.heartbeat =
      heartbeat ??
      timerHeartbeat(nc, subjects(job.jobId).heartbeat, opts.workerId, opts.heartbeatMs, this.key);
    this.port = opts.port;
    this.subj = subjects(job.jobId);
    this.encoder = new ExampleEncoder(tokenizer, {
      maxSourceLength: job.maxSourceLength,
      maxTargetLength: job.maxTargetLength,
    });
    this.done = new Promise((resolve) => {
      this.stopped = resolve;
    });
  }

  async start(): Promise<void> {
    // Proof that the main thread's event loop runs: the progress counter moves every beat while it is free (also
    // while it waits on peers in an all-reduce), and stops only while a computation holds it (a shard's
    // forward/backward, an evaluation) or when it is stuck. The coordinator bounds that with --progress-timeout.
    this.liveness = setInterval(() => {
      this.progress += 1;
      this.beat();
    }, this.opts.heartbeatMs);
    this.liveness.unref();
    await this.listen();
    this.subs.push(
      this.nc.subscribe(this.subj.ctl, {
        callback: (err, msg) => {
          if (err) return;
          let ctl: Control;
          let body: Uint8Array;
          try {
            body = this.opener.open(this.subj.ctl, msg.data).body;
          } catch (e) {
            this.refusals.refused('a control message', (e as Error).message);
            return;
          }
          try {
            ctl = decodeMessage(
              body,
              ['generation', 'step', 'checkpoint', 'stop', 'hello', 'rejoin'],
              REQUIRED_FIELDS,
            );
          } catch (e) {
            // Garbage on the subject: a few lines per window, not one per message.
            const unlogged = this.quietMalformed.take();
            if (unlogged !== undefined)
              this.opts.log.warn(
                `ignored a malformed control message: ${(e as Error).message}${unlogged > 0 ? ` (${unlogged} more since the last such line, not logged)` : ''}`,
              );
            return;
          }
          this.enqueue(() => this.onControl(ctl));
        },
      }),
    );
    await this.join();
  }

  /**
   * Joins (or re-joins after a coordinator restart): retries until accepted, reminding the operator at a bounded
   * rate while nobody answers; stops on a refusal, or when joinTimeoutMs passes (see join-wait.ts). One at a time:
   * a call while joining returns the join in progress.
   */
  private join(): Promise<void> {
    this.joining ??= this.joinOnce().finally(() => {
      this.joining = undefined;
    });
    return this.joining;
  }

  private async joinOnce(): Promise<void> {
    const req: JoinRequest = {
      type: 'join',
      workerId: this.opts.workerId,
      jobId: this.job.jobId,
      protocol: PROTOCOL_VERSION,
      address: this.address(),
      pid: process.pid,
      host: os.hostname(),
      ...this.held(),
    };
    const timeoutMs = this.opts.joinTimeoutMs ?? 0;
    const started = Date.now();
    let nextNotice = JOIN_NOTICE_FIRST_MS;
    let last = '';
    this.opts.log(
      `joining job '${this.job.jobId}' on ${this.subj.join} (NATS ${this.nc.getServer()}; collective at ` +
        `${req.address})${timeoutMs > 0 ? `; giving up after ${timeoutMs / 1000} s (--join-timeout)` : ''}`,
    );
    while (!this.stopping) {
      const waited = Date.now() - started;
      const left = timeoutMs > 0 ? timeoutMs - waited : Number.POSITIVE_INFINITY;
      try {
        const sealed = this.sealer.seal(this.subj.join, req);
        const label = joinReplySubject(this.subj.join, this.sealer.sender, this.sealer.lastSeq);
        const res = await this.nc.request(this.subj.join, sealed, {
          timeout: Math.max(100, Math.min(2000, left)),
        });
        const reply = this.openJoinReply(label, res.data);
        if (reply.type === 'refused') {
          this.opts.log(`join refused: ${reply.reason}`);
          await this.stop(`refused: ${reply.reason}`);
          return;
        }
        this.incarnation = reply.incarnation;
        this.beat();
        this.opts.log(`joined job '${this.job.jobId}' (coordinator ${reply.incarnation})`);
        return;
      } catch (err) {
        last = describeJoinFailure(err);
      }
      if (this.stopping) return;
      const wait: JoinWait = {
        job: this.job.jobId,
        subject: this.subj.join,
        server: this.nc.getServer(),
        waitedMs: Date.now() - started,
        last,
        timeoutMs,
      };
      if (timeoutMs > 0 && wait.waitedMs >= timeoutMs) {
        const e = new JoinTimeoutError(wait);
        this.opts.log(e.message);
        this.failure = e;
        await this.stop(`join timeout after ${Math.round(wait.waitedMs / 1000)} s`);
        return;
      }
      if (wait.waitedMs >= nextNotice) {
        this.opts.log(stillWaitingMessage(wait));
        while (nextNotice <= wait.waitedMs) nextNotice += JOIN_NOTICE_EVERY_MS;
      }
      const pause = Math.min(500, timeoutMs > 0 ? timeoutMs - wait.waitedMs : 500);
      await new Promise((r) => setTimeout(r, pause));
    }
  }

  /**
   * A join reply must be sealed by the coordinator for this worker. An unsealed one is only a hint (anyone on NATS
   * could have sent it): the worker logs it and keeps trying until --join-timeout, so a forged refusal cannot stop it.
   */
  private openJoinReply(label: string, data: Uint8Array): JoinReply {
    try {
      // Its own opener: a reply is bound to its request, and the coordinator's control messages (same sequence
      // space) can be opened before it, which would make the reply look like a replay to the control opener.
      const body = this.replyOpener.open(label, data).body;
      return decodeMessage<JoinReply>(body, ['accepted', 'refused']);
    } catch (e) {
      let hint = '';
      try {
        const r = JSON.parse(new TextDecoder().decode(data)) as { type?: unknown; reason?: unknown };
        if (r.type === 'refused' && r.reason === UNAUTHENTICATED_JOIN) {
          hint = ` (the coordinator says: ${UNAUTHENTICATED_JOIN}; check --token)`;
        }
      } catch {}
      this.refusals.refused('a join reply', `${(e as Error).message}${hint}`);
      throw new Error(`unauthenticated join reply${hint}`);
    }
  }

  /** The states this replica holds in memory, for a re-join (JoinRequest.holds). */
  private held(): { holds?: HeldState } {
    const rt = this.stageRt;
    if (!rt) return {};
    return { holds: { stage: rt.index, inputs: rt.inputsVersion ?? null, states: rt.replica.held() } };
  }

  /**
   * Progress while rank 0 evaluates (inside a checkpoint, which the peers wait for): a milestone per batch, so an
   * evaluation longer than the coordinator's progress timeout (--progress-timeout, 10 min) on a large validation set
   * is not taken for a hung worker.
   */
  private evaluating(step: number): (task: string, done: number, total: number) => void {
    return (task, done, total) => {
      slowEvalBatchIfAsked(this.opts.log);
      this.milestone(evaluatingPhase(step, task, done, total));
    };
  }

  /** The main thread reached a new phase: tell the heartbeat (the coordinator drops a member that makes none). */
  private milestone(phase: string): void {
    this.progress += 1;
    this.phase = phase;
    this.beat();
  }

  private address(): string {
    return this.opts.advertise ?? `${this.opts.host}:${this.port}`;
  }

  private async listen(): Promise<void> {
    this.listener = await listenWithRetry(
      () =>
        GrpcTransport.listen({
          host: this.opts.host,
          port: this.port,
          ...(this.opts.tls ? { tls: this.opts.tls } : {}),
        }),
      { cancelled: () => this.stopping },
    );
    const addr = this.listener.address;
    this.port = Number(addr.slice(addr.lastIndexOf(':') + 1));
  }

  /** Runs control handlers one at a time; a failure is logged and reported, so the coordinator can re-form. */
  private enqueue(fn: () => Promise<void>): void {
    this.queue = this.queue.then(fn).catch((err: unknown) => {
      const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      this.opts.log.error(error);
      if (this.stopping) return;
      void this.closeCollective();
      if (this.incarnation) {
        this.report({
          type: 'error',
          incarnation: this.incarnation,
          generation: this.generation,
          workerId: this.opts.workerId,
          step: this.stageRt?.trainer.optimizer.step ?? 0,
          error,
          ...(err instanceof CorruptVersionError ? { fatal: true } : {}),
        });
      }
    });
  }

  /** Tells the heartbeat what to report; called on every state change. */
  private beat(): void {
    this.heartbeat.update({
      incarnation: this.incarnation,
      generation: this.generation,
      step: this.stageRt?.trainer.optimizer.step ?? 0,
      progress: this.progress,
      phase: this.phase,
    });
  }

  private report(r: Report): void {
    if (this.nc.isClosed() || this.nc.isDraining()) return;
    try {
      for (let i = reportCopies(); i > 0; i--)
        this.nc.publish(this.subj.report, this.sealer.seal(this.subj.report, r));
    } catch (err) {
      // Shutting down while a handler finishes: nobody is listening any more.
      this.opts.log(`could not report ${r.type}: ${(err as Error).message}`);
    }
  }

  private async onControl(ctl: Control): Promise<void> {
    // The coordinator admits and then publishes the first generation at once: on a busy machine both arrive in one
    // read, and this handler can run before join() has taken in the incarnation from the reply (the reply's promise
    // resolves a few microtasks later). Dropping the generation as foreign would stall it until formTimeoutMs.
    if (this.joining && ctl.type !== 'hello') await this.joining;
    if (ctl.type === 'hello') {
      if (ctl.incarnation !== this.incarnation) {
        // A new coordinator incarnation (it restarted): drop everything and join it.
        await this.closeCollective();
        this.generation = -1;
        this.incarnation = undefined;
        void this.join();
      }
      return;
    }
    if (ctl.incarnation !== this.incarnation) return; // another (older or newer) coordinator: fenced
    switch (ctl.type) {
      case 'rejoin':
        if (ctl.workerId !== this.opts.workerId || this.stopping) return;
        // Dropped while alive (a pause, a NATS outage, a stalled phase): leave the generation and join again; the
        // in-memory state goes with the request, so the coordinator can let it restore from memory.
        this.opts.log(`the coordinator dropped this worker (${ctl.reason}); joining again`);
        await this.closeCollective();
        this.generation = -1;
        this.rank = -1;
        this.incarnation = undefined;
        this.milestone('joining');
        void this.join();
        return;
      case 'stop':
        await this.stop(ctl.reason);
        return;
      case 'generation':
        await this.onGeneration(ctl);
        return;
      case 'step':
        if (ctl.generation === this.generation) await this.onStep(ctl);
        return;
      case 'checkpoint':
        if (ctl.generation === this.generation && ctl.workerId === this.opts.workerId)
          await this.onCheckpoint(ctl);
        return;
    }
  }

  /**
   * Generation change (recovery protocol, worker side):
   * 1. Close the previous collective; keep listening on the same port.
   * 2. If not a member, idle until the next generation.
   * 3. Make sure the stage's method exists (creating it with the stage inputs from the bank).
   * 4. Restore the state the generation starts from (ReplicaState.sync): our own committed snapshot when it is at
   *    that step (survivors roll back an update applied for the step in flight), else the named bank version, else
   *    the state before any update.
   * 5. Form the collective with the members in rank order and report ready.
   */
  private async onGeneration(g: GenerationMsg): Promise<void> {
    if (g.generation <= this.generation) return;
    this.milestone(`generation ${g.generation}`);
    await this.closeCollective();
    // Listen again at once, before the slow set-up below, so peers that finish first find us.
    if (!this.listener) await this.listen();
    this.generation = g.generation;
    this.beat();
    const me = g.members.find((m) => m.workerId === this.opts.workerId);
    if (!me) {
      this.rank = -1;
      this.events.onGeneration?.({ generation: g.generation, rank: -1, worldSize: g.members.length });
      return;
    }
    this.rank = me.rank;
    // Rank 0 writes the versions, which record the backbone's digests: start hashing now, in the background.
    if (me.rank === 0) void this.backboneIdentity().catch(() => {});
    await this.ensureStage(g.stage, g.inputs);
    const rt = this.stageRt!;
    // Own memory only where the coordinator trusts it (`memory`: survivors, and re-joined workers whose held
    // checksum is the committed one); a coordinator without the field trusts any snapshot at the step.
    const restore = g.restore;
    await rt.replica.sync(g.step, {
      trusted: g.memory === undefined || g.memory.includes(this.opts.workerId),
      liveTrusted: g.memory !== undefined,
      ...(restore.kind === 'bank'
        ? {
            fromBank: async () => {
              const m = await this.bank.manifest(restore.version);
              const tensors = await loadForRestore(
                this.bank,
                this.job.jobId,
                restore.version,
                `the version generation ${g.generation} restores`,
              );
              const adamSteps = (m.extra?.adamSteps as Record<string, number> | undefined) ?? {};
              return stateFromTensors(rt.method, tensors, m.step, adamSteps, `bank version ${m.id}`);
            },
          }
        : {}),
      what: `generation ${g.generation}`,
    });
    this.lastResult = undefined;
    const peers = [...g.members]
      .sort((a, b) => a.rank - b.rank)
      .map((m) => ({ rank: m.rank, address: m.address }));
    const listener = this.listener!;
    // The collective owns the listener from here on, and closes it when it closes or fails to form.
    this.listener = undefined;
    this.milestone(`generation ${g.generation}: forming the collective`);
    this.collective = await createCollective({
      rank: me.rank,
      peers,
      jobId: this.job.jobId,
      generation: g.generation,
      listener,
      timeoutMs: this.opts.collectiveTimeoutMs,
      // Only members of this generation of this coordinator can derive it (collective/hello.ts).
      peerKey: deriveGenerationKey(this.key, this.job.jobId, this.incarnation!, g.generation),
      ...(this.opts.tls ? { tls: this.opts.tls } : {}),
    });
    this.reducer = new CollectiveReducer(this.collective, (name) => rt.trainer.sizeOf(name));
    this.opts.log(
      `generation ${g.generation}: rank ${me.rank} of ${g.members.length}, stage ${g.stage}, step ${g.step}`,
    );
    this.events.onGeneration?.({ generation: g.generation, rank: me.rank, worldSize: g.members.length });
    this.milestone(`generation ${g.generation}: ready`);
    this.report({
      type: 'ready',
      incarnation: this.incarnation!,
      generation: g.generation,
      workerId: this.opts.workerId,
      step: g.step,
    });
  }

  private async ensureStage(index: number, inputsVersion: string | undefined): Promise<void> {
    if (this.stageRt && this.stageRt.index === index && this.stageRt.inputsVersion === inputsVersion) return;
    this.stageRt?.method.dispose();
    this.stageRt = undefined;
    const stage = this.job.stages[index];
    if (!stage)
      throw new Error(`stage ${index} does not exist in this job (it has ${this.job.stages.length})`);
    const inputs: TensorMap = inputsVersion
      ? await loadForRestore(this.bank, this.job.jobId, inputsVersion, `the inputs of stage ${index}`)
      : new Map();
    const method = createStageMethod(stage, this.model, inputs, this.job.maxSourceLength);
    const { train: tasks, eval: evalTasks } = loadStageTasks(this.job.data, stage);
    const trainer = new Trainer(this.model, method, this.encoder, tasks, {
      ...trainerOptions(stage, silentProgress, this.job.maxTargetLength),
      evalTasks,
    });
    const replica = new ReplicaState(method, trainer.optimizer);
    this.stageRt = { index, stage, method, trainer, replica, inputsVersion };
  }

  /**
   * One step (worker side of the step protocol):
   * 1. A repeated step message (the coordinator resends until every report arrived) re-sends the stored result.
   * 2. Commit the replica state (the coordinator only plans step s after committing s-1).
   * 3. The trainer's step on the plan with the collective reducer (Trainer.step: forward/backward of this rank's
   *    units, the exact tree reduction, the update): identical bits on every replica and at every world size.
   * 4. Report loss, counts, timings and the parameter checksum.
   */
  private async onStep(s: StepMsg): Promise<void> {
    const rt = this.stageRt;
    if (!rt || !this.collective || !this.reducer || s.stage !== rt.index) return;
    if (this.lastResult && this.lastResult.step === s.step && this.lastResult.generation === s.generation) {
      this.report(this.lastResult);
      return;
    }
    if (s.step !== rt.replica.step) {
      this.opts.log(`ignored step ${s.step}: this replica is at step ${rt.replica.step}`);
      return;
    }
    failIfAsked(s.step);
    rt.replica.commit();
    const plan: StepPlan = {
      step: s.step,
      units: s.units.map((u) => u.map(([task, index]) => ({ task, index }))),
      owners: s.owners,
      touched: s.touched,
    };
    const r = await rt.trainer.step(plan, this.reducer, this.rank, (phase) => {
      this.milestone(`step ${s.step}: ${PHASE_NAMES[phase]}`);
      if (phase === 'forward-backward') hangIfAsked(s.step, this.opts.log);
    });
    const result: StepDone = {
      type: 'step-done',
      incarnation: this.incarnation!,
      generation: this.generation,
      workerId: this.opts.workerId,
      stage: rt.index,
      step: s.step,
      loss: r.loss,
      tokens: r.tokens,
      examples: r.examples,
      perTask: r.perTask,
      checksum: rt.trainer.optimizer.checksum(),
      timings: {
        data: 0,
        forwardBackward: r.timings.forwardBackward,
        allReduce: r.timings.reduce,
        optimizer: r.timings.optimizer,
      },
      allReduceBytes: this.reducer.lastBytes,
      gradNorm: r.gradNorm,
      lr: r.lr,
    };
    this.lastResult = result;
    this.milestone(`step ${s.step}: done`);
    if (this.opts.log.enabled('debug')) {
      this.opts.log.debug(`step ${s.step} done: loss ${r.loss.toFixed(4)}, ${r.examples} examples`, {
        step: s.step,
        loss: r.loss,
        checksum: result.checksum,
      });
    }
    this.report(result);
    this.events.onStep?.(result, this.collective.stats());
  }

  private reportCheckpointDone(stage: number, step: number, version: string): void {
    this.report({
      type: 'checkpoint-done',
      incarnation: this.incarnation!,
      generation: this.generation,
      workerId: this.opts.workerId,
      stage,
      step,
      version,
    });
  }

  /** Writes this replica's state at the requested committed step as a bank version (rank 0 is asked). */
  private async onCheckpoint(c: CheckpointMsg): Promise<void> {
    const rt = this.stageRt;
    if (!rt) return;
    // A repeat of a checkpoint this worker already wrote (the coordinator re-sends while a slow or retried write
    // is in progress): report the version again instead of writing another one.
    const done = this.lastCheckpoint;
    if (done && done.stage === rt.index && done.step === c.step && done.parent === c.parent) {
      this.opts.log(
        `checkpoint at step ${c.step} requested again (the coordinator re-sent it): version ${done.version.slice(0, 12)} reported again`,
      );
      this.reportCheckpointDone(rt.index, c.step, done.version);
      return;
    }
    const state = rt.replica.at(c.step);
    if (!state) {
      this.report({
        type: 'error',
        incarnation: this.incarnation!,
        generation: this.generation,
        workerId: this.opts.workerId,
        step: c.step,
        error: `cannot checkpoint step ${c.step}: this replica is at step ${rt.replica.step}`,
      });
      return;
    }
    this.milestone(checkpointPhase(c.step));
    let metrics: Record<string, number> = {};
    const history: HistoryRecord[] = Array.isArray(c.history) ? [...c.history] : [];
    if (rt.stage.train.evalAtStart && c.parent === (rt.inputsVersion ?? null)) {
      // The stage's first version (its parent is the stage's inputs) carries the evaluation before any update.
      // Scored here, where only this rank works and the coordinator waits for it, rather than at step 0, where the
      // peers would wait in the collective; and on the parameters the method was created with, which every replica
      // holds whatever generation it is in. A rewrite of this version after a failure scores them again and records
      // them once; a later version (a resume mid-stage) never does.
      this.milestone(checkpointPhase(c.step, 'evaluating step 0'));
      const e = rt.trainer.optimizer.withParameters(rt.replica.initialParams, () =>
        rt.trainer.evaluate(0, 'validation', this.evaluating(0)),
      );
      history.unshift(evalRecord(rt.stage.name, e, 'validation'));
      this.opts.log(`eval @ step 0 (untrained): average ${e.average.toFixed(2)} | ${formatEvalScores(e)}`);
    }
    // Evaluated: the stage's last step and, with `evalEvery`, every evalEvery-th step (the coordinator asks for a
    // version at each), as the single-process Trainer evaluates.
    const { evalEvery } = rt.stage.train;
    let best: BestVersion | undefined;
    if (c.final || (evalEvery > 0 && c.step % evalEvery === 0)) {
      const e = rt.trainer.evaluate(c.step, 'validation', this.evaluating(c.step));
      metrics = {
        validationAverage: e.average,
        ...(e.heldOut ? { heldOutAverage: e.heldOut.average } : {}),
        ...e.scores,
      };
      history.push(evalRecord(rt.stage.name, e, 'validation'));
      this.events.onEval?.(e);
      // What a stage hands on is its best evaluated state (the highest validation average, the earliest on ties),
      // as the Trainer keeps its best parameters: when an earlier version of this stage scored at least as well as
      // the last step, the stage's final version carries that version's state and scores.
      if (c.final && evalEvery > 0) {
        const earlier = await this.bestEvaluatedVersion(rt, c.parent);
        if (earlier && earlier.average >= e.average) best = earlier;
      }
    }
    this.milestone(checkpointPhase(c.step, 'writing'));
    const commitStarted = performance.now();
    let { tensors, adamSteps } = stateTensors(rt.method, state);
    if (best) {
      this.opts.log(
        `stage ${rt.stage.name}: the best validation average is step ${best.step}'s (${best.average.toFixed(2)}), ` +
          `version ${best.id.slice(0, 12)}; the stage's final version carries its state`,
      );
      tensors = await loadForRestore(
        this.bank,
        this.job.jobId,
        best.id,
        `stage ${rt.stage.name}'s best version`,
      );
      adamSteps = best.adamSteps;
      metrics = best.metrics;
    }
    const v = await this.commitWithRetry(c.step, {
      job: this.job.jobId,
      parent: c.parent,
      ...(c.expectHead !== undefined ? { expectHead: c.expectHead } : {}),
      step: c.step,
      method: rt.stage.method.name,
      config: rt.stage.method,
      tensors,
      metrics,
      tags: c.final ? [`${this.job.jobId}.${rt.stage.name}`.replace(/[^A-Za-z0-9_.-]/g, '-')] : [],
      extra: {
        stage: rt.index,
        stageName: rt.stage.name,
        final: c.final,
        adamSteps,
        ...(best ? { best: { step: best.step, version: best.id } } : {}),
        inputs: rt.inputsVersion ?? null,
        backbone: await this.backboneIdentity(),
      },
      attachments: {
        // How the version was made: the resolved job, and the steps and evaluations since its parent.
        [JOB_ATTACHMENT]: { data: encodeJobConfig(this.job), mediaType: 'application/json' },
        ...(history.length > 0
          ? { [HISTORY_ATTACHMENT]: { data: encodeHistory(history), mediaType: HISTORY_MEDIA_TYPE } }
          : {}),
      },
    });
    this.milestone(checkpointPhase(c.step, 'written'));
    this.lastCheckpoint = { stage: rt.index, step: c.step, parent: c.parent, version: v.id };
    this.reportCheckpointDone(rt.index, c.step, v.id);
    this.events.onCheckpoint?.({
      version: v.id,
      step: c.step,
      final: c.final,
      seconds: (performance.now() - commitStarted) / 1000,
    });
  }

  /**
   * The best evaluated version of this stage among `parent` and its ancestors back to the stage's inputs: the
   * highest `validationAverage` (the versions at evaluation steps record it), the earliest on ties. Read from the
   * bank, so a rank 0 that joined mid-stage finds the versions its predecessors wrote.
   */
  private async bestEvaluatedVersion(
    rt: StageRuntime,
    parent: string | null,
  ): Promise<BestVersion | undefined> {
    if (parent === null) return undefined;
    let best: BestVersion | undefined;
    for (const { id } of await this.bank.lineage(parent)) {
      if (id === rt.inputsVersion) break;
      const m = await this.bank.manifest(id);
      if (Number(m.extra?.stage ?? -1) !== rt.index) break;
      const average = m.metrics.validationAverage;
      // Newest first: an equal score further back is earlier, and wins.
      if (typeof average === 'number' && m.step > 0 && (!best || average >= best.average)) {
        const adamSteps = (m.extra?.adamSteps ?? {}) as Record<string, number>;
        best = { id, step: m.step, average, metrics: m.metrics, adamSteps };
      }
    }
    return best;
  }

  /** Why the worker stopped on its own account (a JoinTimeoutError), if it did. */
  get error(): Error | undefined {
    return this.failure;
  }

  /** Where the worker is, for its log records: -1 and undefined before the first generation and stage. */
  get status(): { generation: number; stage: number | undefined; step: number | undefined } {
    return {
      generation: this.generation,
      stage: this.stageRt?.index,
      step: this.stageRt?.trainer.optimizer.step,
    };
  }

  /** Admitted by the current coordinator (the readiness probe). */
  get joined(): boolean {
    return this.incarnation !== undefined && !this.stopping;
  }

  /**
   * Writes a bank version, retrying what storage can recover from (a full disk, an I/O error, a lock held too long:
   * someone frees space, the volume recovers) with backoff for up to CHECKPOINT_RETRY_MS. Each failure is logged
   * with its cause and counted (promptmesh_checkpoint_write_failures_total{reason}); the replica keeps its state in
   * memory meanwhile, so nothing is lost. A bank conflict (another writer moved the head) is not retried here: the
   * coordinator decides. The last error, with its cause, is what the coordinator hears if the budget runs out.
   */
  private async commitWithRetry(
    step: number,
    input: Parameters<RuntimeBank['commit']>[0],
  ): Promise<{ id: string }> {
    const started = performance.now();
    let delay = 250;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.bank.commit(input);
      } catch (e) {
        const reason = storageFailure(e);
        this.events.onCheckpointFailure?.(
          reason ?? ((e as Error).name === 'BankConflictError' ? 'bank_conflict' : 'other'),
        );
        const elapsed = performance.now() - started;
        if (reason === undefined || this.stopping || elapsed + delay > CHECKPOINT_RETRY_MS) throw e;
        this.opts.log.warn(
          `checkpoint at step ${step}: write failed (${reason}: ${(e as Error).message}); retry ${attempt} in ${(delay / 1000).toFixed(1)} s, the state stays in memory`,
        );
        this.milestone(checkpointPhase(step, `retry ${attempt}`));
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 8000);
      }
    }
  }

  /**
   * The backbone's digests for the versions this worker writes: hashed once, in the background from the first
   * time they are asked for (rank 0's first generation), so a large backbone's hashing is off the checkpoint's path.
   */
  private backboneIdentity(): Promise<BackboneIdentity> {
    this.backbone ??= backboneIdentity(this.job.backbone.checkpoint);
    return this.backbone;
  }

  /**
   * Closes the collective (its transport lets peers drain for up to 2 s) and listens again on the same port.
   * Closes run one after another, and every caller waits for those before it: a failed step closes the collective
   * without waiting (enqueue), and the next generation's handler must not bind the port while that close still
   * holds it, nor that close's re-listen bind it again once the new generation's collective owns it (EADDRINUSE).
   */
  private closeCollective(): Promise<void> {
    const c = this.collective;
    this.collective = undefined;
    this.reducer = undefined;
    this.closing = this.closing.then(async () => {
      if (c) await c.close().catch(() => {});
      if (!this.listener && !this.stopping)
        await this.listen().catch((e: unknown) =>
          this.opts.log.error(`cannot listen: ${(e as Error).message}`),
        );
    });
    return this.closing;
  }

  async stop(reason: string): Promise<void> {
    this.stopping = true;
    clearInterval(this.liveness);
    await this.heartbeat.stop();
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    if (this.incarnation && !this.nc.isClosed()) {
      this.nc.publish(
        this.subj.leave,
        this.sealer.seal(this.subj.leave, {
          type: 'leave',
          workerId: this.opts.workerId,
          incarnation: this.incarnation,
          reason,
        }),
      );
      await this.nc.flush().catch(() => {});
    }
    await this.closeCollective();
    await this.listener?.close().catch(() => {});
    this.stageRt?.method.dispose();
    this.stopped(reason);
  }
}
