/**
 * The communicator: all-reduce among a fixed group of ranks (one generation of the job) over a Transport.
 *
 * Semantics (NCCL's and Gloo's model):
 *   - Every rank calls the same collectives in the same order with the same step and options; calls on one
 *     communicator run one at a time in call order.
 *   - allReduce returns a new Float32Array and never modifies its input, so a failed step leaves the caller's
 *     gradients intact for the retry. A result is returned only when this rank holds the complete reduction;
 *     there is no partially reduced result.
 *   - Any failure (a peer's timeout, death or abort, a protocol mismatch) breaks the communicator: the failing rank
 *     tells every peer, and every later call fails at once with the first error. Recovery is close() + a new
 *     communicator for the next generation (see the coordinator's recovery protocol).
 */
import {
  type AlgorithmChoice,
  type AlgorithmName,
  DEFAULT_CROSSOVER_BYTES,
  parseAlgorithmChoice,
  selectAlgorithm,
} from './algorithm-selection.js';
import { CollectiveClosedError, CollectiveConfigError } from './errors.js';
import { GrpcTransport, MAX_MESSAGE_BYTES } from './grpc-transport.js';
import { halvingDoublingAllReduce } from './halving-doubling-allreduce.js';
import { OpContext } from './op-context.js';
import {
  DEFAULT_CHUNK_BYTES,
  type PeerInfo,
  splitAddress,
  type TlsFiles,
  validateChunkBytes,
  validatePeers,
} from './options.js';
import { ringAllReduce } from './ring-allreduce.js';
import { TcpTransport } from './tcp-transport.js';
import type { OpTag, Transport, TransportStats } from './transport.js';
import { parseWireFormat, WIRE_CODE, type WireFormat } from './wire-format.js';

export type ReduceOp = 'sum' | 'mean';

export interface CollectiveOptions {
  readonly rank: number;
  /** Must equal peers.length when given. */
  readonly worldSize?: number;
  readonly peers: readonly PeerInfo[];
  readonly jobId: string;
  readonly generation: number;
  /** Default 'grpc'. 'tcp' is the plain-socket transport (no TLS) used as the benchmark's ceiling. */
  readonly transport?: 'grpc' | 'tcp';
  /** Longest any single wait may take (see ConnectOptions.timeoutMs). Default 30 s. */
  readonly timeoutMs?: number;
  /** gRPC only: TLS / mutual TLS from PEM files. */
  readonly tls?: TlsFiles;
  /** gRPC only: the per-generation secret whose proof every subscriber must bring (ConnectOptions.peerKey). */
  readonly peerKey?: Uint8Array;
  /**
   * An already listening transport (from GrpcTransport.listen / TcpTransport.listen), for workers that bind before
   * they know their peers. Without it this rank binds peers[rank].address.
   */
  readonly listener?: Transport;
  /** Largest message payload; all ranks must agree. Default 4 MiB. */
  readonly chunkBytes?: number;
  /** Buffers below this many bytes use halving-doubling under 'auto'. All ranks must agree. */
  readonly crossoverBytes?: number;
  readonly algorithm?: AlgorithmChoice;
}

export interface AllReduceOptions {
  /** The training step; carried on every message and checked by the receivers. */
  readonly step: number;
  /** Default 'sum'. 'mean' divides the sum by the world size. */
  readonly op?: ReduceOp;
  /** Element encoding on the wire. Default 'f32' (exact float32 sums). */
  readonly wire?: WireFormat;
  /** Overrides the communicator's algorithm choice for this call (every rank must pass the same). */
  readonly algorithm?: AlgorithmChoice;
}

export interface CollectiveStats extends TransportStats {
  readonly ops: number;
  readonly lastAlgorithm: AlgorithmName | undefined;
}

export class Collective {
  private opSeq = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private lastAlgorithm: AlgorithmName | undefined;
  private readonly chunkBytes: number;
  private readonly crossoverBytes: number;
  private readonly algorithm: AlgorithmChoice;

  constructor(
    readonly transport: Transport,
    options: Pick<CollectiveOptions, 'chunkBytes' | 'crossoverBytes' | 'algorithm'> = {},
  ) {
    this.chunkBytes = validateChunkBytes(options.chunkBytes);
    if (this.chunkBytes + 4096 > MAX_MESSAGE_BYTES) {
      throw new CollectiveConfigError(`chunkBytes ${this.chunkBytes} exceeds the transport's message limit`);
    }
    this.crossoverBytes = options.crossoverBytes ?? DEFAULT_CROSSOVER_BYTES;
    if (!(this.crossoverBytes >= 0))
      throw new CollectiveConfigError(`crossoverBytes ${this.crossoverBytes} is < 0`);
    this.algorithm = parseAlgorithmChoice(options.algorithm);
  }

  get rank(): number {
    return this.transport.rank;
  }

  get worldSize(): number {
    return this.transport.worldSize;
  }

  /** The algorithm 'auto' picks for a buffer of `byteLength` bytes of float32 data. */
  algorithmFor(byteLength: number, choice: AlgorithmChoice = this.algorithm): AlgorithmName {
    return selectAlgorithm(byteLength, this.worldSize, choice, this.crossoverBytes);
  }

  /**
   * Sums (or averages) `input` across all ranks. Resolves with a new array holding the result, identical to the
   * last bit on every rank; `input` is not modified. Rejects with a CollectiveError naming the peer and step when
   * a peer fails, stalls beyond timeoutMs, or disagrees about what is being reduced.
   */
  allReduce(input: Float32Array, options: AllReduceOptions): Promise<Float32Array> {
    if (!(input instanceof Float32Array)) {
      return Promise.reject(new CollectiveConfigError('allReduce takes a Float32Array'));
    }
    const { step } = options;
    if (!Number.isSafeInteger(step) || step < 0) {
      return Promise.reject(new CollectiveConfigError(`step ${step} must be a non-negative integer`));
    }
    const op = options.op ?? 'sum';
    if (op !== 'sum' && op !== 'mean') {
      return Promise.reject(new CollectiveConfigError(`op '${op as string}' is not sum or mean`));
    }
    let wire: WireFormat;
    let name: AlgorithmName;
    try {
      wire = parseWireFormat(options.wire);
      name = this.algorithmFor(input.byteLength, parseAlgorithmChoice(options.algorithm ?? this.algorithm));
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.closed) return Promise.reject(new CollectiveClosedError('allReduce on a closed communicator'));
    const tag: OpTag = { step, op: this.opSeq++, wire: WIRE_CODE[wire], totalElements: input.length };
    const run = async (): Promise<Float32Array> => {
      const failure = this.transport.failure;
      if (failure) throw failure;
      const buf = input.slice();
      const ctx = new OpContext(this.transport, tag, wire, this.chunkBytes / 4);
      this.lastAlgorithm = name;
      try {
        if (name === 'ring') await ringAllReduce(ctx, buf);
        else await halvingDoublingAllReduce(ctx, buf);
      } catch (e) {
        this.transport.abort(e as Error, tag);
        throw e;
      }
      if (op === 'mean' && this.worldSize > 1) {
        const n = this.worldSize;
        for (let i = 0; i < buf.length; i++) buf[i]! /= n;
      }
      return buf;
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  stats(): CollectiveStats {
    return { ...this.transport.stats(), ops: this.opSeq, lastAlgorithm: this.lastAlgorithm };
  }

  /** Releases the transport (sockets, timers). Pending calls fail with CollectiveClosedError. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.transport.close();
  }
}

/**
 * Binds (unless `options.listener` is given), forms the mesh with every peer and returns a ready communicator.
 * Resolves once this rank can exchange messages with every peer; fails after timeoutMs naming missing peers.
 */
export async function createCollective(options: CollectiveOptions): Promise<Collective> {
  const peers = validatePeers(options.peers, options.rank);
  if (options.worldSize !== undefined && options.worldSize !== peers.length) {
    throw new CollectiveConfigError(
      `worldSize ${options.worldSize} does not match the ${peers.length} peers given`,
    );
  }
  validateChunkBytes(options.chunkBytes ?? DEFAULT_CHUNK_BYTES);
  const kind = options.transport ?? 'grpc';
  let transport = options.listener;
  if (transport && transport.kind !== kind) {
    throw new CollectiveConfigError(
      `listener is a ${transport.kind} transport but transport '${kind}' was asked for`,
    );
  }
  if (!transport) {
    const { host, port } = splitAddress(peers[options.rank]!.address);
    transport =
      kind === 'tcp'
        ? await TcpTransport.listen({ host, port })
        : await GrpcTransport.listen({ host, port, tls: options.tls });
  }
  try {
    await transport.connect(peers, {
      jobId: options.jobId,
      generation: options.generation,
      rank: options.rank,
      timeoutMs: options.timeoutMs,
      ...(options.peerKey ? { peerKey: options.peerKey } : {}),
    });
    return new Collective(transport, options);
  } catch (e) {
    await transport.close();
    throw e;
  }
}
