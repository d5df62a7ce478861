/**
 * One coordinator per job: a lease in a JetStream key-value bucket (`promptmesh_leases`, one key per job, entries
 * expiring `ttlMs` after their last write).
 *
 * 1. Acquire: `create(job)` succeeds only when no live lease exists (absent, deleted, or expired because its
 *    holder stopped renewing). Otherwise the holder is named in the log and we try again every `ttlMs / 3` until
 *    `waitMs` has passed (then LeaseHeldError: the second coordinator exits with a message naming the holder).
 * 2. Renew every `ttlMs / 3` with `update(job, value, revision)`: a compare-and-set on the revision we wrote last.
 *    When it fails, the key decides: still our value (an update applied whose reply was lost in a NATS restart):
 *    ours, at its new revision; absent (expired while we were paused, nobody took it): created again; unreadable:
 *    try again next tick; another holder's value: the lease is lost, `onLost` runs and the coordinator must stop
 *    at once without telling the workers anything (they follow the new holder, whose `hello` carries another
 *    incarnation).
 * 3. Release at the end: delete the key if it is still our revision, so a successor starts without waiting.
 *
 * Without JetStream on the server, there is no lease (a warning says so) and nothing fences a second coordinator.
 */
import * as os from 'node:os';
import type { KV, NatsConnection } from 'nats';
import { localHolderGone } from '../../bank/file-lock.js';

export const LEASE_BUCKET = 'promptmesh_leases';

export interface LeaseHolder {
  incarnation: string;
  host: string;
  pid: number;
  since: string;
}

export class LeaseHeldError extends Error {
  override name = 'LeaseHeldError';
  constructor(
    readonly job: string,
    readonly holder: LeaseHolder | undefined,
    waitedMs: number,
  ) {
    super(
      `another coordinator holds job '${job}'${holder ? ` (host ${holder.host}, pid ${holder.pid}, since ${holder.since})` : ''} ` +
        `and kept it for the ${Math.round(waitedMs / 1000)} s this one waited (--lease-wait). Stop it first, or use another --job-id; ` +
        'a coordinator that died releases the job within the lease TTL.',
    );
  }
}

export interface LeaseOptions {
  ttlMs: number;
  /** How long to wait for a live holder (Infinity: wait until it goes). */
  waitMs: number;
  /** Who holds it (a fresh id per coordinator process). */
  incarnation: string;
  log: (line: string) => void;
  /** Called once if the lease is lost while held (see step 2). */
  onLost: (reason: string) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class CoordinatorLease {
  private timer: NodeJS.Timeout | undefined;
  private lost = false;
  private renewing = false;

  private constructor(
    private readonly kv: KV,
    readonly job: string,
    private revision: number,
    private readonly value: string,
    private readonly opts: LeaseOptions,
  ) {}

  /** Step 1. Undefined when the server has no JetStream (no lease is possible there). */
  static async acquire(
    nc: NatsConnection,
    job: string,
    opts: LeaseOptions,
  ): Promise<CoordinatorLease | undefined> {
    let kv: KV;
    try {
      kv = await nc.jetstream().views.kv(LEASE_BUCKET, { ttl: opts.ttlMs, history: 1 });
    } catch (e) {
      opts.log(
        `warning: no coordinator lease (JetStream is not available on the NATS server: ${(e as Error).message}); ` +
          'nothing stops a second coordinator of this job',
      );
      return undefined;
    }
    const holder: LeaseHolder = {
      incarnation: opts.incarnation,
      host: os.hostname(),
      pid: process.pid,
      since: new Date().toISOString(),
    };
    const value = JSON.stringify(holder);
    const started = Date.now();
    let logged = '';
    for (;;) {
      try {
        const revision = await kv.create(job, value);
        const lease = new CoordinatorLease(kv, job, revision, value, opts);
        opts.log(`holds the coordinator lease of job '${job}' (TTL ${Math.round(opts.ttlMs / 1000)} s)`);
        lease.timer = setInterval(() => void lease.renew(), Math.max(50, Math.floor(opts.ttlMs / 3)));
        lease.timer.unref();
        return lease;
      } catch {
        // Held (or a race with another starter): read who holds it, wait, try again.
      }
      const current = await kv.get(job).catch(() => null);
      let other: LeaseHolder | undefined;
      try {
        other =
          current && current.operation === 'PUT' ? (JSON.parse(current.string()) as LeaseHolder) : undefined;
      } catch {
        other = undefined;
      }
      if (current && other && localHolderGone(other.host, other.pid)) {
        // Its holder ran on this host and is gone (kill -9, a crash): take over at once instead of waiting for
        // the TTL, if nobody else did in between (compare-and-set on its revision).
        opts.log(
          `job '${job}' was held by pid ${other.pid} on this host, which is gone; taking over its lease`,
        );
        await kv.delete(job, { previousSeq: current.revision }).catch(() => {});
        continue;
      }
      const waited = Date.now() - started;
      if (waited >= opts.waitMs) throw new LeaseHeldError(job, other, waited);
      const who = other ? `${other.host} pid ${other.pid}` : 'another coordinator';
      if (who !== logged) {
        opts.log(
          `job '${job}' is held by ${who} (lease TTL ${Math.round(opts.ttlMs / 1000)} s); waiting for it to stop`,
        );
        logged = who;
      }
      await sleep(Math.max(50, Math.floor(opts.ttlMs / 3)));
    }
  }

  /** Step 2. One renewal at a time: a renewal slower than the interval (NATS reconnecting) is not overtaken. */
  private async renew(): Promise<void> {
    if (this.lost || this.renewing) return;
    this.renewing = true;
    try {
      const lost = await this.renewOnce();
      if (lost === undefined || this.lost) return;
      this.lost = true;
      clearInterval(this.timer);
      this.opts.onLost(lost);
    } finally {
      this.renewing = false;
    }
  }

  /** A compare-and-set on our last revision; when it fails, what the key holds decides. Returns why, when lost. */
  private async renewOnce(): Promise<string | undefined> {
    let error: Error;
    try {
      this.revision = await this.kv.update(this.job, this.value, this.revision);
      return undefined;
    } catch (e) {
      error = e as Error;
    }
    const current = await this.kv.get(this.job).catch(() => undefined);
    // Cannot tell (NATS down or reconnecting): keep the revision and try again next tick.
    if (current === undefined) return undefined;
    if (current && current.operation === 'PUT' && current.string() === this.value) {
      // Ours (the value names this process's incarnation). Either the update failed for a transient reason, or it
      // was applied and its reply lost (a NATS restart in between: "TIMEOUT"), which moved the revision on.
      this.revision = current.revision;
      return undefined;
    }
    if (current === null || current.operation !== 'PUT') {
      // Nobody holds it (it expired while this process was paused, or was released): take it back, unless another
      // coordinator takes it first (create is a compare-and-set on absence).
      try {
        this.revision = await this.kv.create(this.job, this.value);
        this.opts.log(
          `the coordinator lease of job '${this.job}' had expired and nobody held it: taken again`,
        );
        return undefined;
      } catch {
        // Taken in between, or NATS failed: the next tick reads the key again and decides.
        return undefined;
      }
    }
    let holder = 'another coordinator';
    try {
      const h = JSON.parse(current.string()) as LeaseHolder;
      holder = `the coordinator on ${h.host} pid ${h.pid} (since ${h.since})`;
    } catch {
      // not our format: name nobody
    }
    return `the coordinator lease of job '${this.job}' was lost (${error.message}); ${holder} holds it now`;
  }

  /** Step 3. */
  async release(): Promise<void> {
    clearInterval(this.timer);
    if (this.lost) return;
    await this.kv.delete(this.job, { previousSeq: this.revision }).catch(() => {});
  }
}
