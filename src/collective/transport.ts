/**
 * The transport interface the all-reduce algorithms run over: ordered, reliable, tagged point-to-point messages
 * between the ranks of one communicator. Two implementations: GrpcTransport (the product) and TcpTransport (plain
 * sockets, the benchmark's ceiling). Both are full meshes formed by `connect()` after `listen()`, so a worker can
 * bind, register its address with the coordinator, and learn the peer list later.
 */
import type { ConnectOptions, PeerInfo } from './options.js';

/** Identifies one collective operation; every message of the op carries it (plus the job and generation). */
export interface OpTag {
  readonly step: number;
  /** The op's sequence number on this communicator (0, 1, 2, ...): the same on every rank. */
  readonly op: number;
  /** WireFormat code (see wire-format.ts). */
  readonly wire: number;
  /** Number of floats being reduced: a mismatch means the ranks' step plans differ. */
  readonly totalElements: number;
}

export interface TransportStats {
  /** Frames dropped because their (step, op, seq) was older than the one awaited, or their generation older. */
  staleRefused: number;
  /** Frames and subscriptions/handshakes dropped because they belong to another job or a newer generation. */
  foreignRefused: number;
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface Transport {
  readonly kind: 'grpc' | 'tcp';
  /** `host:port` this transport listens on (the port is real even when 0 was asked for). */
  readonly address: string;
  readonly rank: number;
  readonly worldSize: number;
  readonly timeoutMs: number;
  /** Forms the mesh; resolves when this rank can send to and receive from every peer. Call once. */
  connect(peers: readonly PeerInfo[], options: ConnectOptions): Promise<this>;
  /** 'rank 2 (127.0.0.1:40123)', for error messages. */
  describePeer(rank: number): string;
  /**
   * Sends one message. `fill` writes exactly `payloadBytes` bytes into the frame synchronously, so the source may be
   * modified once `send` returns; the promise resolves when the peer's connection accepts more (flow control).
   */
  send(
    to: number,
    tag: OpTag,
    seq: number,
    payloadBytes: number,
    fill: (dst: Uint8Array) => void,
  ): Promise<void>;
  /** The payload of the message `seq` of op `tag` from `from`; `what` names the phase in timeout messages. */
  recv(from: number, tag: OpTag, seq: number, what: string): Promise<Uint8Array>;
  /** Marks the transport broken, fails pending waits, and tells every peer (best effort) why. */
  abort(error: Error, tag: OpTag | undefined): void;
  /** The first failure, once broken. */
  readonly failure: Error | undefined;
  stats(): TransportStats;
  /** Flushes what was sent (bounded by a short grace period), then releases sockets and timers. Idempotent. */
  close(): Promise<void>;
}
