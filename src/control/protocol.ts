/**
 * The control-plane protocol between the coordinator and the workers, carried by NATS as JSON.
 * Subjects (JOB = the job id):
 *   promptmesh.JOB.join        request/reply  worker -> coordinator   JoinRequest -> JoinReply
 *   promptmesh.JOB.heartbeat   publish        worker -> coordinator   Heartbeat
 *   promptmesh.JOB.leave       publish        worker -> coordinator   Leave
 *   promptmesh.JOB.ctl         publish        coordinator -> workers  Control (generation, step, checkpoint, stop)
 *   promptmesh.JOB.report      publish        worker -> coordinator   Report (ready, step result, checkpoint, error)
 * Every message carries the coordinator's incarnation and the generation it belongs to; anything from another
 * incarnation or an older generation is ignored (fenced), so a stale member can never act on the job.
 * Every message is sealed with a MAC keyed by the job key (control/message-auth.ts), join replies included; an
 * unsealed or replayed one is refused before it is parsed. The join token is never sent.
 */

import type { HistoryRecord } from '../train/history.js';

/** 3: every message sealed (message-auth.ts), no token in the join. */
export const PROTOCOL_VERSION = 3;
/** Largest control message accepted; plans of huge batches stay far below it. */
export const MAX_CONTROL_BYTES = 512 * 1024;

export function subjects(job: string) {
  const base = `promptmesh.${job}`;
  return {
    join: `${base}.join`,
    heartbeat: `${base}.heartbeat`,
    leave: `${base}.leave`,
    ctl: `${base}.ctl`,
    report: `${base}.report`,
  };
}

export interface JoinRequest {
  type: 'join';
  workerId: string;
  jobId: string;
  protocol: number;
  /** host:port of this worker's collective (gRPC) listener. */
  address: string;
  pid?: number;
  host?: string;
  /**
   * The training state this worker still holds in memory (a worker that was dropped while alive and re-joins):
   * the coordinator lets it restore from memory instead of the bank when a held state is the committed one.
   */
  holds?: HeldState;
}

/** Shape check of JoinRequest.holds (an untrusted field: anything else is ignored, never an error). */
export function isHeldState(v: unknown): v is HeldState {
  if (typeof v !== 'object' || v === null) return false;
  const h = v as Record<string, unknown>;
  return (
    Number.isInteger(h.stage) &&
    (h.inputs === null || typeof h.inputs === 'string') &&
    Array.isArray(h.states) &&
    h.states.length <= 4 &&
    h.states.every(
      (s: unknown) =>
        typeof s === 'object' &&
        s !== null &&
        Number.isInteger((s as { step?: unknown }).step) &&
        typeof (s as { checksum?: unknown }).checksum === 'string',
    )
  );
}

/** A replica's in-memory states, each named by its step and parameter checksum (PromptOptimizer.checksum). */
export interface HeldState {
  stage: number;
  /** The bank version holding the stage's inputs, null when the stage has none. */
  inputs: string | null;
  states: { step: number; checksum: string }[];
}

/**
 * The label a join reply is sealed under (its NATS subject is a random inbox): binds the reply to the one request
 * it answers (the request's sender and sequence number), so no reply can be replayed to another request.
 */
export function joinReplySubject(joinSubject: string, requestSender: string, requestSeq: number): string {
  return `${joinSubject}.reply.${requestSender}.${requestSeq}`;
}

/** The (unsealed) refusal of a join request that was not sealed with the job key. Generic on purpose. */
export const UNAUTHENTICATED_JOIN =
  'not authenticated: this worker does not hold the join token the coordinator was started with';

export type JoinReply =
  | { type: 'accepted'; incarnation: string; workerId: string; heartbeatMs: number }
  | { type: 'refused'; reason: string };

export interface Heartbeat {
  type: 'heartbeat';
  workerId: string;
  incarnation: string;
  generation: number;
  step: number;
  /**
   * Proof of life of the worker's main thread: a counter it advances on a timer of its own event loop and at every
   * milestone (step received, shard computed, all-reduced, applied, checkpoint written...), and the phase it last
   * entered. Heartbeats come from a separate thread, so a stuck main thread still beats: a counter that stops
   * moving is what gives it away (legitimately only for the length of one computation).
   */
  progress?: number;
  /** What the main thread does, in words (logged for a hung worker); the checkpoint phases below are also read. */
  phase?: string;
}

/** Heartbeat phase while writing the checkpoint at `step` (`what`: a sub-phase; `written` when it is done). */
export function checkpointPhase(step: number, what?: string): string {
  return what ? `checkpoint at step ${step}: ${what}` : `checkpoint at step ${step}`;
}

/** Heartbeat phase per evaluation batch (evaluations run inside a checkpoint). */
export function evaluatingPhase(step: number, task: string, done: number, total: number): string {
  return `evaluating step ${step}: ${task} ${done}/${total}`;
}

/** Whether a heartbeat phase says the worker is inside the checkpoint at `step` and has not written it yet. */
export function inCheckpoint(phase: string, step: number): boolean {
  if (phase.startsWith('evaluating step ')) return true;
  const m = /^checkpoint at step (\d+)(?:: (.*))?$/.exec(phase);
  return m !== null && Number(m[1]) === step && m[2] !== 'written';
}

export interface Leave {
  type: 'leave';
  workerId: string;
  incarnation: string;
  reason: string;
}

export interface Member {
  workerId: string;
  rank: number;
  address: string;
}

/** Where a generation starts from. */
export type RestorePoint =
  | { kind: 'fresh' }
  /** Bank version holding params, optimizer moments and the step counter. */
  | { kind: 'bank'; version: string };

export interface GenerationMsg {
  type: 'generation';
  incarnation: string;
  generation: number;
  stage: number;
  members: Member[];
  /** The step the generation starts with (the first not yet committed). */
  step: number;
  restore: RestorePoint;
  /** Bank version whose tensors are the stage's inputs (earlier stages' outputs), if any. */
  inputs?: string;
  /**
   * Members whose in-memory state at `step` the coordinator trusts (survivors of the previous generation and
   * re-joined workers whose held checksum is the committed one); the others restore `restore`. Absent: every
   * member that holds a snapshot at `step` uses it (coordinators before this field).
   */
  memory?: string[];
}

/** One example of the plan: task name and index into that task's training set. */
export type PlannedExample = [task: string, index: number];

export interface StepMsg {
  type: 'step';
  incarnation: string;
  generation: number;
  stage: number;
  step: number;
  /**
   * The global batch cut into units (fixed micro-batches, in batch order; train/step-plan.ts): what is added
   * along the unit tree, so their composition is part of the plan, not of a worker's shard.
   */
  units: PlannedExample[][];
  /** The rank (in this generation) that computes each unit: the shards, token-balanced at unit granularity. */
  owners: number[];
  /** Parameters this step updates (those the global batch touches), in the method's parameter order. */
  touched: string[];
}

export interface CheckpointMsg {
  type: 'checkpoint';
  incarnation: string;
  generation: number;
  stage: number;
  /** The committed step whose state to save (the worker's state after applying it). */
  step: number;
  workerId: string;
  parent: string | null;
  /** The job's current bank head when it is not `parent` (resuming from an older version); the commit's CAS. */
  expectHead?: string | null;
  final: boolean;
  /**
   * The run history since the parent version (train/history.ts step records of this stage), for the version's
   * `history.jsonl` attachment. Absent from coordinators that keep none.
   */
  history?: HistoryRecord[];
}

export interface StopMsg {
  type: 'stop';
  incarnation: string;
  /** JOB_COMPLETE when the job completed; any other reason means it was stopped unfinished. */
  reason: string;
}

/** StopMsg.reason of a completed job: the only stop after which a worker exits 0. */
export const JOB_COMPLETE = 'job complete';

/** Published by a coordinator when it starts (and while it waits for workers): workers of another incarnation re-join. */
export interface HelloMsg {
  type: 'hello';
  incarnation: string;
}

/**
 * The coordinator no longer counts this worker as a member (it missed heartbeats, or made no progress) but hears
 * it beating: the worker drops its generation and joins again, to be a member of the next one.
 */
export interface RejoinMsg {
  type: 'rejoin';
  incarnation: string;
  workerId: string;
  reason: string;
}

export type Control = GenerationMsg | StepMsg | CheckpointMsg | StopMsg | HelloMsg | RejoinMsg;

export interface Timings {
  data: number;
  forwardBackward: number;
  allReduce: number;
  optimizer: number;
}

export type Report =
  | { type: 'ready'; incarnation: string; generation: number; workerId: string; step: number }
  | {
      type: 'step-done';
      incarnation: string;
      generation: number;
      workerId: string;
      stage: number;
      step: number;
      loss: number;
      tokens: number;
      examples: number;
      perTask: Record<string, { nllSum: number; tokens: number; examples: number }>;
      checksum: string;
      timings: Timings;
      allReduceBytes: number;
      /** Global gradient norm before clipping and the learning rate per parameter group (the run history). */
      gradNorm?: number;
      lr?: Record<string, number>;
    }
  | {
      type: 'checkpoint-done';
      incarnation: string;
      generation: number;
      workerId: string;
      stage: number;
      step: number;
      version: string;
    }
  | {
      type: 'error';
      incarnation: string;
      generation: number;
      workerId: string;
      step: number;
      error: string;
      /**
       * Retrying cannot help (a bank version the generation restores is corrupt): the coordinator stops the job
       * at once instead of re-forming. Optional, so a coordinator that predates it just retries.
       */
      fatal?: boolean;
    };

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parses and shape-checks a control-plane message. Anything malformed, oversized or of an unexpected type is a
 * ProtocolError: the receiver logs it and drops it, never crashes.
 */
export function decodeMessage<T extends { type: string }>(
  data: Uint8Array,
  allowed: readonly T['type'][],
  required: Record<string, readonly string[]> = {},
): T {
  if (data.byteLength > MAX_CONTROL_BYTES) {
    throw new ProtocolError(
      `message of ${data.byteLength} bytes exceeds the ${MAX_CONTROL_BYTES}-byte limit`,
    );
  }
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(data));
  } catch (err) {
    throw new ProtocolError(`not JSON: ${(err as Error).message}`);
  }
  if (!isObj(v) || typeof v.type !== 'string') throw new ProtocolError('not an object with a string "type"');
  if (!(allowed as readonly string[]).includes(v.type)) {
    throw new ProtocolError(`unexpected message type '${v.type}' (expected ${allowed.join(', ')})`);
  }
  for (const f of required[v.type] ?? []) {
    if (!(f in v)) throw new ProtocolError(`'${v.type}' message is missing '${f}'`);
  }
  return v as T;
}

export function encodeMessage(msg: object): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(msg));
}

export const REQUIRED_FIELDS: Record<string, readonly string[]> = {
  join: ['workerId', 'jobId', 'protocol', 'address'],
  heartbeat: ['workerId', 'incarnation', 'generation', 'step'],
  leave: ['workerId', 'incarnation'],
  ready: ['incarnation', 'generation', 'workerId', 'step'],
  'step-done': [
    'incarnation',
    'generation',
    'workerId',
    'stage',
    'step',
    'loss',
    'tokens',
    'checksum',
    'timings',
  ],
  'checkpoint-done': ['incarnation', 'generation', 'workerId', 'stage', 'step', 'version'],
  error: ['incarnation', 'generation', 'workerId', 'error'],
  generation: ['incarnation', 'generation', 'stage', 'members', 'step', 'restore'],
  step: ['incarnation', 'generation', 'stage', 'step', 'units', 'owners', 'touched'],
  checkpoint: ['incarnation', 'generation', 'stage', 'step', 'workerId', 'parent', 'final'],
  stop: ['incarnation', 'reason'],
  hello: ['incarnation'],
  rejoin: ['incarnation', 'workerId', 'reason'],
};
