import { CollectiveConfigError } from './errors.js';

/** A member of the communicator: its rank (0..worldSize-1) and the `host:port` its transport listens on. */
export interface PeerInfo {
  readonly rank: number;
  readonly address: string;
}

/**
 * TLS material as file paths (PEM). With `caFile` on the server and `requireClientCert`, peers must present a
 * certificate signed by that CA (mutual TLS). Every worker is both a server (peers subscribe to it) and a client
 * (it subscribes to peers), so each needs a certificate and the CA.
 */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
  /** Mutual TLS: refuse peers without a certificate signed by `caFile`. Default true. */
  readonly requireClientCert?: boolean;
  /** Host name to check the peers' certificates against instead of the address's host (e.g. 'localhost'). */
  readonly serverNameOverride?: string;
}

export interface ListenOptions {
  /** Default '127.0.0.1': never exposed beyond the machine unless asked for. */
  readonly host?: string;
  /** Default 0 (an ephemeral port; read it back from `address`). */
  readonly port?: number;
  readonly tls?: TlsFiles;
  /** Largest message chunk in bytes; also bounds gRPC's receive limit. Default DEFAULT_CHUNK_BYTES. */
  readonly chunkBytes?: number;
}

export interface ConnectOptions {
  readonly jobId: string;
  readonly generation: number;
  readonly rank: number;
  /**
   * How long any one wait may last: for a peer's next message, for a peer to read what we sent, for the mesh to
   * form. A stalled or dead peer is reported within this time (a crashed one usually at once).
   */
  readonly timeoutMs?: number;
  /**
   * The secret that proves membership of this generation (hello.ts): with it, every subscription must carry a
   * valid proof, and one without is refused. At least 32 bytes; every rank of the generation has the same one.
   * gRPC only.
   */
  readonly peerKey?: Uint8Array;
}

/** ConnectOptions with the defaults filled in. */
export type ValidConnectOptions = Required<Omit<ConnectOptions, 'peerKey'>> & {
  readonly peerKey?: Uint8Array;
};

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_TIMEOUT_MS = 30_000;
/**
 * 4 MiB messages: grpc-js's per-message cost (a 5-byte prefix copy, an HTTP/2 DATA frame train, a JS callback
 * chain) is amortised above ~1 MiB, while smaller chunks keep the ring pipeline busy. Measured in
 * bench/allreduce.ts; see docs/collective.md.
 */
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;
/** HTTP/2 stream and connection window the receiving side advertises: enough to keep several chunks in flight. */
export const DEFAULT_FLOW_CONTROL_WINDOW = 64 * 1024 * 1024;

export function validatePeers(peers: readonly PeerInfo[], rank: number): PeerInfo[] {
  const worldSize = peers.length;
  if (worldSize < 1)
    throw new CollectiveConfigError('peers is empty: a communicator needs at least one rank');
  const byRank: PeerInfo[] = [];
  const seen = new Set<string>();
  for (const p of peers) {
    if (!Number.isInteger(p.rank) || p.rank < 0 || p.rank >= worldSize) {
      throw new CollectiveConfigError(
        `peer rank ${p.rank} (${p.address}) is outside 0..${worldSize - 1}: ranks must be 0..peers.length-1`,
      );
    }
    if (byRank[p.rank]) throw new CollectiveConfigError(`rank ${p.rank} appears twice in peers`);
    if (seen.has(p.address)) throw new CollectiveConfigError(`address ${p.address} appears twice in peers`);
    seen.add(p.address);
    byRank[p.rank] = p;
  }
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new CollectiveConfigError(
      `rank ${rank} is outside 0..${worldSize - 1} (peers has ${worldSize} entries)`,
    );
  }
  return byRank;
}

export function validateConnect(o: ConnectOptions): ValidConnectOptions {
  if (typeof o.jobId !== 'string' || o.jobId.length === 0) {
    throw new CollectiveConfigError('jobId must be a non-empty string');
  }
  if (!Number.isSafeInteger(o.generation) || o.generation < 0) {
    throw new CollectiveConfigError(`generation ${o.generation} must be a non-negative integer`);
  }
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new CollectiveConfigError(`timeoutMs ${timeoutMs} must be > 0`);
  if (o.peerKey !== undefined && !(o.peerKey instanceof Uint8Array && o.peerKey.length >= 32)) {
    throw new CollectiveConfigError('peerKey must be at least 32 bytes');
  }
  return {
    jobId: o.jobId,
    generation: o.generation,
    rank: o.rank,
    timeoutMs,
    ...(o.peerKey ? { peerKey: o.peerKey } : {}),
  };
}

export function validateChunkBytes(chunkBytes: number | undefined): number {
  const c = chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isInteger(c) || c < 1024 || c % 8 !== 0 || c > 256 * 1024 * 1024) {
    throw new CollectiveConfigError(`chunkBytes ${c} must be a multiple of 8 between 1 KiB and 256 MiB`);
  }
  return c;
}

/** Splits 'host:port' / '[v6]:port'. */
export function splitAddress(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(address);
  if (!m) throw new CollectiveConfigError(`address '${address}' is not host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

export function joinAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
