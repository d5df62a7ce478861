/**
 * What GrpcTransport and TcpTransport share once connected: framing, flow control waits with timeouts, the
 * receive inboxes, abort broadcast and statistics. Subclasses own the connections.
 */
import {
  CollectiveClosedError,
  CollectiveConnectError,
  CollectiveTimeoutError,
  PeerFailedError,
} from './errors.js';
import { encodeFrame, type FrameHeader, FrameKind } from './frame-codec.js';
import type { ConnectOptions, PeerInfo, ValidConnectOptions } from './options.js';
import { PeerInboxes } from './peer-inboxes.js';
import type { OpTag, Transport, TransportStats } from './transport.js';

interface DrainWait {
  readonly tag: OpTag;
  resolve(): void;
  reject(e: Error): void;
}

/** How long close() lets peers drain what was already sent before it drops the connections. */
const CLOSE_GRACE_MS = 2000;

export abstract class MeshTransport implements Transport {
  abstract readonly kind: 'grpc' | 'tcp';
  abstract readonly address: string;
  rank = -1;
  worldSize = 0;
  timeoutMs = 0;
  protected jobId = '';
  protected generation = 0;
  protected jobIdBytes: Uint8Array = new Uint8Array(0);
  protected peers: PeerInfo[] = [];
  protected inboxes: PeerInboxes | undefined;
  protected closing = false;
  private readonly drainWaits = new Map<number, Set<DrainWait>>();
  /** Counts refusals that happen before connect() (subscriptions parked and later refused). */
  protected readonly earlyCounters = { staleRefused: 0, foreignRefused: 0 };

  /** Called whenever the mesh may have formed or failed (a peer linked, a connect error); set by waitForMesh. */
  protected meshChanged: (() => void) | undefined;
  /** The first error that makes forming the mesh impossible. */
  protected connectFailure: Error | undefined;
  private closePromise: Promise<void> | undefined;

  abstract connect(peers: readonly PeerInfo[], options: ConnectOptions): Promise<this>;
  /**
   * The transport's own part of closing, after every pending wait failed: end the connections, letting peers
   * receive what was already written (see closeWithinGrace), then stop listening.
   */
  protected abstract shutdown(): Promise<void>;
  /** Bytes reserved in front of each encoded frame for the transport's own prefix. */
  protected abstract readonly prefixBytes: number;
  /** Hands a complete frame to the connection to `to`; false when the caller should wait for drain. */
  protected abstract writeFrame(to: number, frame: Buffer): boolean;
  /** Registers `cb` for the connection to `to` becoming writable again; returns the unregister function. */
  protected abstract onDrain(to: number, cb: () => void): () => void;

  protected attach(peers: PeerInfo[], o: ValidConnectOptions): void {
    this.peers = peers;
    this.rank = o.rank;
    this.worldSize = peers.length;
    this.timeoutMs = o.timeoutMs;
    this.jobId = o.jobId;
    this.generation = o.generation;
    this.jobIdBytes = new TextEncoder().encode(o.jobId);
    this.inboxes = new PeerInboxes(o, peers.length, o.timeoutMs, (r) => this.describePeer(r));
  }

  describePeer(rank: number): string {
    return `rank ${rank} (${this.peers[rank]?.address ?? '?'})`;
  }

  get failure(): Error | undefined {
    return this.inboxes?.failure;
  }

  private connected(): PeerInboxes {
    if (!this.inboxes) throw new CollectiveClosedError('transport is not connected: call connect() first');
    return this.inboxes;
  }

  send(
    to: number,
    tag: OpTag,
    seq: number,
    payloadBytes: number,
    fill: (dst: Uint8Array) => void,
  ): Promise<void> {
    const inboxes = this.connected();
    if (inboxes.failure) return Promise.reject(inboxes.failure);
    const header: FrameHeader = {
      jobId: this.jobId,
      generation: this.generation,
      step: tag.step,
      op: tag.op,
      seq,
      from: this.rank,
      kind: FrameKind.Data,
      wire: tag.wire,
      totalElements: tag.totalElements,
    };
    const { buffer, payloadOffset } = encodeFrame(header, this.jobIdBytes, payloadBytes, this.prefixBytes);
    fill(buffer.subarray(payloadOffset, payloadOffset + payloadBytes));
    inboxes.counters.framesSent++;
    inboxes.counters.bytesSent += payloadBytes;
    let ok: boolean;
    try {
      ok = this.writeFrame(to, buffer);
    } catch (e) {
      // The stream is gone (the peer died or closed its side) before the receive path noticed: same failure as
      // a broken connection, and it must name the step like every other mid-collective error.
      if (!(e instanceof CollectiveConnectError)) return Promise.reject(e);
      return Promise.reject(
        new PeerFailedError(
          `${e.message} while sending at step ${tag.step} (op ${tag.op}): that peer's process died or closed its side. ` +
            'The communicator is broken: close it and re-form the group.',
          to,
          this.describePeer(to),
          tag.step,
          { cause: e },
        ),
      );
    }
    if (ok) return Promise.resolve();
    return this.waitDrain(to, tag);
  }

  private waitDrain(to: number, tag: OpTag): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let waits = this.drainWaits.get(to);
      if (!waits) {
        waits = new Set();
        this.drainWaits.set(to, waits);
      }
      const done = (): void => {
        clearTimeout(timer);
        off();
        waits.delete(w);
      };
      const w: DrainWait = {
        tag,
        resolve: () => {
          done();
          resolve();
        },
        reject: (e) => {
          done();
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        w.reject(
          new CollectiveTimeoutError(
            `rank ${this.rank} waited ${this.timeoutMs} ms for ${this.describePeer(to)} to read what it was sent at step ` +
              `${tag.step} (op ${tag.op}); that peer stalled. The communicator is broken: close it and re-form the group.`,
            to,
            this.describePeer(to),
            tag.step,
          ),
        );
      }, this.timeoutMs);
      const off = this.onDrain(to, () => w.resolve());
      waits.add(w);
    });
  }

  recv(from: number, tag: OpTag, seq: number, what: string): Promise<Uint8Array> {
    return this.connected().recv(from, tag, seq, what);
  }

  /** Subclasses call this when the connection from/to `peer` ended; `detail` says how. */
  protected peerLost(peer: number, detail: string, cause?: unknown): void {
    if (this.closing || !this.inboxes) return;
    const err = new PeerFailedError(
      `connection between rank ${this.rank} and ${this.describePeer(peer)} ended: ${detail}`,
      peer,
      this.peers[peer]?.address ?? '?',
      undefined,
      { cause },
    );
    this.inboxes.peerEnded(peer, err);
    for (const w of [...(this.drainWaits.get(peer) ?? [])]) {
      w.reject(
        new PeerFailedError(
          `${err.message} (rank ${this.rank} was sending at step ${w.tag.step}, op ${w.tag.op})`,
          peer,
          err.peerAddress,
          w.tag.step,
          { cause },
        ),
      );
    }
  }

  abort(error: Error, tag: OpTag | undefined): void {
    const inboxes = this.inboxes;
    if (!inboxes) return;
    const first = !inboxes.failure;
    inboxes.failAll(error);
    for (const set of this.drainWaits.values()) for (const w of [...set]) w.reject(error);
    if (!first || this.closing) return;
    const reason = error.message.slice(0, 4000);
    for (let to = 0; to < this.worldSize; to++) {
      if (to === this.rank) continue;
      const { buffer } = encodeFrame(
        {
          jobId: this.jobId,
          generation: this.generation,
          step: tag?.step ?? 0,
          op: tag?.op ?? 0,
          seq: 0,
          from: this.rank,
          kind: FrameKind.Abort,
          wire: 0,
          totalElements: 0,
          reason,
        },
        this.jobIdBytes,
        0,
        this.prefixBytes,
      );
      try {
        this.writeFrame(to, buffer);
      } catch {
        // Best effort: that peer's connection is already gone.
      }
    }
  }

  stats(): TransportStats {
    const c = this.inboxes?.counters;
    return {
      staleRefused: (c?.staleRefused ?? 0) + this.earlyCounters.staleRefused,
      foreignRefused: (c?.foreignRefused ?? 0) + this.earlyCounters.foreignRefused,
      framesSent: c?.framesSent ?? 0,
      framesReceived: c?.framesReceived ?? 0,
      bytesSent: c?.bytesSent ?? 0,
      bytesReceived: c?.bytesReceived ?? 0,
    };
  }

  /** Closes once (later calls get the same promise): pending waits fail, a connect in progress fails, then shutdown. */
  close(): Promise<void> {
    this.closePromise ??= (async () => {
      this.shutdownInboxes();
      this.connectFailure ??= new CollectiveConnectError('the transport was closed while connecting');
      this.meshChanged?.();
      await this.shutdown();
    })();
    return this.closePromise;
  }

  /** Waits for `graceful` (connections drained and closed) at most CLOSE_GRACE_MS, then calls `force`. */
  protected async closeWithinGrace(graceful: Promise<unknown>, force: () => void): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      graceful,
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          force();
          resolve();
        }, CLOSE_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
  }

  protected failConnect(e: Error): void {
    if (!this.connectFailure) this.connectFailure = e;
    this.meshChanged?.();
  }

  /**
   * Resolves once `linked(r)` holds for every other rank, rejects with the first connect failure, or after the
   * connect timeout with `missing()` saying which links are absent.
   */
  protected waitForMesh(linked: (rank: number) => boolean, missing: () => string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        finish();
        reject(
          new CollectiveConnectError(
            `rank ${this.rank} could not form the mesh within ${this.timeoutMs} ms: ${missing()}`,
          ),
        );
      }, this.timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.meshChanged = undefined;
      };
      const check = (): void => {
        if (this.connectFailure) {
          finish();
          reject(this.connectFailure);
          return;
        }
        for (let r = 0; r < this.worldSize; r++) if (r !== this.rank && !linked(r)) return;
        finish();
        resolve();
      };
      this.meshChanged = check;
      check();
    });
  }

  /** Called by close(): fails pending waits so nothing awaits forever. */
  protected shutdownInboxes(): void {
    this.closing = true;
    const err = new CollectiveClosedError(`rank ${this.rank}: the communicator was closed`);
    this.inboxes?.failAll(err);
    for (const set of this.drainWaits.values()) for (const w of [...set]) w.reject(err);
  }
}
