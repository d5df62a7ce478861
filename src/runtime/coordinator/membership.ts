import {
  type Heartbeat,
  type HeldState,
  isHeldState,
  type JoinReply,
  type JoinRequest,
  type Member,
  PROTOCOL_VERSION,
} from '../../control/protocol.js';
import type { MEMBERSHIP_REASONS } from '../../telemetry/metric-definitions.js';

/** A worker the coordinator knows (admitted, not dropped). */
export interface WorkerInfo {
  workerId: string;
  address: string;
  lastSeen: number;
  joinedAt: number;
  /** The main thread's progress counter and phase from its last heartbeat, and when the counter last moved. */
  progress?: number;
  phase?: string;
  progressAt: number;
  /** What a re-joining worker still holds in memory (JoinRequest.holds). */
  holds?: HeldState;
}

export interface MembershipOptions {
  jobId: string;
  incarnation: string;
  maxWorkers: number;
  heartbeatMs: number;
  /** A worker silent for this long is declared dead. */
  heartbeatTimeoutMs: number;
  /** A worker waited on whose main thread made no progress for this long is declared hung. */
  progressTimeoutMs: number;
  now: () => number;
  log: (line: string) => void;
  onMembership?: (reason: (typeof MEMBERSHIP_REASONS)[number]) => void;
}

/**
 * Who is in the job: admission, heartbeats and liveness, and the members of the current generation (ranks
 * 0..N-1). It decides nothing about training state: the coordinator forms generations from `live()` and says
 * where they restore from.
 */
export class Membership {
  private readonly workers = new Map<string, WorkerInfo>();
  /** The current generation's members, in rank order. */
  members: Member[] = [];
  /** When each dropped-but-beating worker was last told to re-join, and last logged (rate limits). */
  private readonly rejoinToldAt = new Map<string, number>();
  private readonly rejoinLoggedAt = new Map<string, number>();

  constructor(private readonly opts: MembershipOptions) {}

  /** Workers known (admitted and not dropped). */
  get size(): number {
    return this.workers.size;
  }

  get(workerId: string): WorkerInfo | undefined {
    return this.workers.get(workerId);
  }

  isMember(workerId: string): boolean {
    return this.members.some((m) => m.workerId === workerId);
  }

  /** Known workers in join order (the ring order of the next generation), at most maxWorkers. */
  live(): WorkerInfo[] {
    return [...this.workers.values()].sort((a, b) => a.joinedAt - b.joinedAt).slice(0, this.opts.maxWorkers);
  }

  /**
   * Admission of an authenticated request (the coordinator checked its MAC: the sender holds the join token):
   * right job, right protocol, room in the world, not a duplicate of a live member.
   */
  admit(req: JoinRequest): JoinReply {
    const o = this.opts;
    if (req.jobId !== o.jobId) {
      return { type: 'refused', reason: `wrong job '${req.jobId}': this coordinator runs '${o.jobId}'` };
    }
    if (req.protocol !== PROTOCOL_VERSION) {
      return {
        type: 'refused',
        reason: `protocol ${req.protocol} is not supported (coordinator speaks ${PROTOCOL_VERSION}); upgrade the worker`,
      };
    }
    if (
      typeof req.workerId !== 'string' ||
      !req.workerId ||
      typeof req.address !== 'string' ||
      !/^.+:\d+$/.test(req.address)
    ) {
      return { type: 'refused', reason: 'workerId and address host:port are required' };
    }
    const existing = this.workers.get(req.workerId);
    const now = o.now();
    if (existing && existing.address !== req.address && now - existing.lastSeen < o.heartbeatTimeoutMs) {
      return {
        type: 'refused',
        reason: `worker id '${req.workerId}' is already a live member at ${existing.address}`,
      };
    }
    if (!existing && this.workers.size >= o.maxWorkers) {
      return { type: 'refused', reason: `the job is full (${o.maxWorkers} workers)` };
    }
    this.workers.set(req.workerId, {
      workerId: req.workerId,
      address: req.address,
      lastSeen: now,
      joinedAt: existing?.joinedAt ?? now,
      progressAt: now,
      ...(isHeldState(req.holds) ? { holds: req.holds } : {}),
    });
    this.rejoinToldAt.delete(req.workerId);
    this.rejoinLoggedAt.delete(req.workerId);
    o.log(`worker ${req.workerId} joined from ${req.address} (${this.workers.size} known)`);
    o.onMembership?.('joined');
    return {
      type: 'accepted',
      incarnation: o.incarnation,
      workerId: req.workerId,
      heartbeatMs: o.heartbeatMs,
    };
  }

  /**
   * Records a heartbeat of this incarnation. Returns false when the worker is not known: it was dropped
   * (missed heartbeats during a pause or a NATS outage, or made no progress) while alive (see shouldTellRejoin).
   */
  heartbeat(h: Heartbeat): boolean {
    const now = this.opts.now();
    const w = this.workers.get(h.workerId);
    if (!w) return false;
    w.lastSeen = now;
    if (typeof h.progress === 'number' && h.progress !== w.progress) {
      w.progress = h.progress;
      w.progressAt = now;
    }
    if (typeof h.phase === 'string') w.phase = h.phase.slice(0, 64);
    return true;
  }

  /** Any report of a known worker proves it alive. */
  seen(workerId: string): void {
    const w = this.workers.get(workerId);
    if (w) w.lastSeen = this.opts.now();
  }

  /**
   * Whether to tell a beating-but-unknown worker to re-join now: at most once a second per worker id (logged once
   * every 30 s: a worker whose main thread is stuck beats on without ever re-joining).
   */
  shouldTellRejoin(workerId: string): boolean {
    if (typeof workerId !== 'string' || !workerId) return false;
    const now = this.opts.now();
    const last = this.rejoinToldAt.get(workerId);
    if (last !== undefined && now - last < 1000) return false;
    if (this.rejoinToldAt.size >= 1024) this.rejoinToldAt.clear();
    this.rejoinToldAt.set(workerId, now);
    const logged = this.rejoinLoggedAt.get(workerId);
    if (logged === undefined || now - logged >= 30_000) {
      if (this.rejoinLoggedAt.size >= 1024) this.rejoinLoggedAt.clear();
      this.rejoinLoggedAt.set(workerId, now);
      this.opts.log(`worker ${workerId} is beating but no longer a member: told to re-join`);
      this.opts.onMembership?.('rejoin');
    }
    return true;
  }

  /** A worker left on its own; returns whether it was a member (the generation must be re-formed). */
  leave(workerId: string, reason: string): boolean {
    if (!this.workers.has(workerId)) return false;
    this.workers.delete(workerId);
    this.opts.log(`worker ${workerId} left (${reason})`);
    this.opts.onMembership?.('left');
    return this.isMember(workerId);
  }

  /**
   * Liveness: the workers to drop now, with the reason: silent for heartbeatTimeoutMs (dead), or waited on
   * (`waitsOn`) with no main-thread progress for progressTimeoutMs (hung: its heartbeats come from another thread).
   */
  expired(waitsOn: (workerId: string) => boolean): { workerId: string; reason: string }[] {
    const now = this.opts.now();
    const out: { workerId: string; reason: string }[] = [];
    for (const w of this.workers.values()) {
      if (now - w.lastSeen > this.opts.heartbeatTimeoutMs) {
        this.opts.log(`worker ${w.workerId} missed heartbeats for ${now - w.lastSeen} ms: declared dead`);
        this.opts.onMembership?.('timeout');
        out.push({ workerId: w.workerId, reason: `worker ${w.workerId} timed out` });
      } else if (waitsOn(w.workerId) && now - w.progressAt > this.opts.progressTimeoutMs) {
        this.opts.log(
          `worker ${w.workerId} made no progress for ${now - w.progressAt} ms (stuck in ${w.phase ?? 'an unknown phase'}), though its heartbeats arrive: declared hung`,
        );
        this.opts.onMembership?.('hung');
        out.push({ workerId: w.workerId, reason: `worker ${w.workerId} hung` });
      }
    }
    return out;
  }

  /**
   * Forgets a worker (dead or hung); returns whether it was a member. It leaves the member list at once, so that
   * if it comes back it is a newcomer (its state may be stale), unless its held checksum proves otherwise.
   */
  drop(workerId: string): boolean {
    this.workers.delete(workerId);
    if (!this.isMember(workerId)) return false;
    this.members = this.members.filter((m) => m.workerId !== workerId);
    return true;
  }
}
