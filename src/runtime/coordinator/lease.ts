/**
 * One coordinator per job: a lease in a JetStream key-value bucket (`promptmesh_leases`, one key per job, entries
 * expiring `ttlMs` after their last write).
 *
 * 1. Acquire: `create(job)` succeeds only when no live lease exists (absent, deleted, or expired because its
 *    holder stopped renewing). Otherwise the holder is named in the log and we try again every `ttlMs / 3` until
 *    `waitMs` has passed (then LeaseHeldError: the second coordinator exits with a message naming the holder).
 * 2. Renew every `ttlMs / 3` with `update(job, value, revision)`: a compare-and-set on the revision we wrote last.
 *    If it fails (our lease expired while we were paused and someone else took it) the lease is lost: `onLost`
 *    runs and the coordinator must stop at once without telling the workers anything (they follow the new holder,
 *    whose `hello` carries another incarnation).
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

  /** Step 2. */
  private async renew(): Promise<void> {
    if (this.lost) return;
    try {
      this.revision = await this.kv.update(this.job, this.value, this.revision);
    } catch (e) {
      // A transient NATS error keeps the old revision and retries next tick; a revision mismatch means another
      // coordinator holds the job now.
      const current = await this.kv.get(this.job).catch(() => undefined);
      if (current === undefined) return; // cannot tell (NATS down): try again next tick
      if (current && current.operation === 'PUT' && current.revision === this.revision) return;
      this.lost = true;
      clearInterval(this.timer);
      this.opts.onLost(
        `the coordinator lease of job '${this.job}' was lost (${(e as Error).message}); another coordinator holds it now`,
      );
    }
  }

  /** Step 3. */
  async release(): Promise<void> {
    clearInterval(this.timer);
    if (this.lost) return;
    await this.kv.delete(this.job, { previousSeq: this.revision }).catch(() => {});
  }
}
