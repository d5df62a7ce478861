/**
 * The same mesh over plain TCP sockets: the benchmark's ceiling for what the machine's network path allows from
 * Node, and a fallback transport. Frames use the gRPC framing's 5-byte prefix (a zero flag byte, a big-endian
 * length) and the same protobuf Frame encoding, so the two transports differ only in HTTP/2 + grpc-js.
 *
 * Mesh formation: rank r dials every lower rank and accepts every higher one; the dialer's first frame is READY
 * with its tag, which the acceptor validates (foreign job / stale generation refused and counted) and answers
 * with its own READY. Sockets accepted before connect() are parked until this rank knows its tag.
 */
import * as net from 'node:net';
import { CollectiveConfigError, CollectiveConnectError } from './errors.js';
import { decodeFrame, encodeFrame, type Frame, FrameKind, MESSAGE_PREFIX_BYTES } from './frame-codec.js';
import { MAX_MESSAGE_BYTES } from './grpc-transport.js';
import { MeshTransport } from './mesh-transport.js';
import {
  type ConnectOptions,
  DEFAULT_HOST,
  joinAddress,
  type ListenOptions,
  type PeerInfo,
  splitAddress,
  validateConnect,
  validatePeers,
} from './options.js';

/** Splits a byte stream into frames, each copied into its own buffer laid out as gRPC hands messages over. */
class FrameParser {
  private header = Buffer.alloc(MESSAGE_PREFIX_BYTES);
  private headerFill = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;

  constructor(private readonly onFrame: (frame: Frame) => void) {}

  push(d: Buffer): void {
    let pos = 0;
    while (pos < d.length) {
      if (!this.body) {
        const n = Math.min(MESSAGE_PREFIX_BYTES - this.headerFill, d.length - pos);
        d.copy(this.header, this.headerFill, pos, pos + n);
        this.headerFill += n;
        pos += n;
        if (this.headerFill < MESSAGE_PREFIX_BYTES) return;
        const len = this.header.readUInt32BE(1);
        if (len > MAX_MESSAGE_BYTES)
          throw new RangeError(`frame of ${len} bytes exceeds ${MAX_MESSAGE_BYTES}`);
        this.body = Buffer.allocUnsafe(MESSAGE_PREFIX_BYTES + len);
        this.bodyFill = MESSAGE_PREFIX_BYTES;
        this.headerFill = 0;
      }
      const n = Math.min(this.body.length - this.bodyFill, d.length - pos);
      d.copy(this.body, this.bodyFill, pos, pos + n);
      this.bodyFill += n;
      pos += n;
      if (this.bodyFill === this.body.length) {
        const body = this.body;
        this.body = undefined;
        this.onFrame(decodeFrame(body.subarray(MESSAGE_PREFIX_BYTES)));
      }
    }
  }
}

export class TcpTransport extends MeshTransport {
  readonly kind = 'tcp' as const;
  protected readonly prefixBytes = MESSAGE_PREFIX_BYTES;
  private readonly sockets: (net.Socket | undefined)[] = [];
  private readonly allSockets = new Set<net.Socket>();
  private parked: { socket: net.Socket; hello: Frame; bind: (peer: number) => void }[] = [];

  private constructor(
    private readonly server: net.Server,
    readonly address: string,
  ) {
    super();
  }

  static async listen(options: ListenOptions = {}): Promise<TcpTransport> {
    if (options.tls) throw new CollectiveConfigError('the tcp transport has no TLS; use the grpc transport');
    const host = options.host ?? DEFAULT_HOST;
    let transport: TcpTransport | undefined;
    const server = net.createServer((s) => transport!.onAccept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(
          new CollectiveConnectError(
            `cannot listen on ${joinAddress(host, options.port ?? 0)}: ${e.message}`,
          ),
        ),
      );
      server.listen(options.port ?? 0, host, () => resolve());
    });
    const addr = server.address() as net.AddressInfo;
    transport = new TcpTransport(server, joinAddress(host, addr.port));
    return transport;
  }

  private frameToBuffer(kind: number): Buffer {
    const { buffer } = encodeFrame(
      {
        jobId: this.jobId,
        generation: this.generation,
        step: 0,
        op: 0,
        seq: 0,
        from: this.rank,
        kind,
        wire: 0,
        totalElements: 0,
      },
      this.jobIdBytes,
      0,
      MESSAGE_PREFIX_BYTES,
    );
    return this.prefix(buffer);
  }

  private prefix(buffer: Buffer): Buffer {
    buffer[0] = 0;
    buffer.writeUInt32BE(buffer.length - MESSAGE_PREFIX_BYTES, 1);
    return buffer;
  }

  /** Common socket wiring; `onFirst` handles the handshake frame, later frames go to the inbox of `peer()`. */
  private wire(s: net.Socket, onFirst: (f: Frame, bind: (peer: number) => void) => number | undefined): void {
    this.allSockets.add(s);
    s.setNoDelay(true);
    let peer: number | undefined;
    let first = true;
    const parser = new FrameParser((f) => {
      if (first) {
        first = false;
        peer = onFirst(f, (p) => {
          peer = p;
        });
        return;
      }
      if (peer !== undefined) this.inboxes!.deliver(peer, f);
    });
    s.on('data', (d: Buffer) => {
      try {
        parser.push(d);
      } catch (e) {
        if (peer !== undefined) this.peerLost(peer, `malformed stream (${(e as Error).message})`, e);
        s.destroy();
      }
    });
    s.on('error', () => {
      // 'close' follows and reports it.
    });
    s.on('close', (hadError) => {
      this.allSockets.delete(s);
      if (peer !== undefined && this.sockets[peer] === s) {
        this.peerLost(
          peer,
          hadError ? 'the connection was reset (the peer died?)' : 'the peer closed its communicator',
        );
      }
    });
  }

  private onAccept(s: net.Socket): void {
    if (this.closing) {
      s.destroy();
      return;
    }
    this.wire(s, (hello, bind) => {
      if (!this.inboxes) {
        this.parked.push({ socket: s, hello, bind });
        return undefined;
      }
      return this.acceptHello(s, hello);
    });
  }

  private acceptHello(s: net.Socket, h: Frame): number | undefined {
    let reason: string | undefined;
    let stale = false;
    if (h.kind !== FrameKind.Ready || h.jobId !== this.jobId)
      reason = `job '${h.jobId}' is not '${this.jobId}'`;
    else if (h.generation !== this.generation) {
      stale = h.generation < this.generation;
      reason = `generation ${h.generation} is not ${this.generation}`;
    } else if (h.from <= this.rank || h.from >= this.worldSize || this.sockets[h.from]) {
      reason = `rank ${h.from} may not dial rank ${this.rank}`;
    }
    if (reason) {
      if (stale) this.earlyCounters.staleRefused++;
      else this.earlyCounters.foreignRefused++;
      s.destroy();
      return undefined;
    }
    this.sockets[h.from] = s;
    s.write(this.frameToBuffer(FrameKind.Ready));
    this.meshChanged?.();
    return h.from;
  }

  async connect(peerList: readonly PeerInfo[], options: ConnectOptions): Promise<this> {
    if (this.inboxes) throw new CollectiveConfigError('connect() was already called on this transport');
    const o = validateConnect(options);
    if (o.peerKey) {
      throw new CollectiveConfigError(
        'the tcp transport cannot prove membership (peerKey); use the grpc transport',
      );
    }
    const peers = validatePeers(peerList, o.rank);
    this.attach(peers, o);
    const parked = this.parked;
    this.parked = [];
    for (const { socket, hello, bind } of parked) {
      const peer = this.acceptHello(socket, hello);
      if (peer !== undefined) bind(peer);
    }
    for (let q = 0; q < o.rank; q++) this.dial(peers[q]!);
    await this.waitForMesh(
      (r) => Boolean(this.sockets[r]),
      () =>
        `no connection with ${this.peers
          .filter((p) => p.rank !== this.rank && !this.sockets[p.rank])
          .map((p) => this.describePeer(p.rank))
          .join(', ')}`,
    );
    return this;
  }

  private dial(p: PeerInfo): void {
    const { host, port } = splitAddress(p.address);
    const s = net.connect({ host, port });
    this.wire(s, (f) => {
      if (
        f.kind !== FrameKind.Ready ||
        f.jobId !== this.jobId ||
        f.generation !== this.generation ||
        f.from !== p.rank
      ) {
        this.failConnect(
          new CollectiveConnectError(
            `${this.describePeer(p.rank)} answered as rank ${f.from} of job '${f.jobId}'`,
          ),
        );
        s.destroy();
        return undefined;
      }
      this.sockets[p.rank] = s;
      this.meshChanged?.();
      return p.rank;
    });
    s.once('connect', () => s.write(this.frameToBuffer(FrameKind.Ready)));
    s.once('close', () => {
      if (!this.sockets[p.rank] && !this.closing) {
        this.failConnect(
          new CollectiveConnectError(`${this.describePeer(p.rank)} refused or dropped our handshake`),
        );
      }
    });
  }

  protected writeFrame(to: number, frame: Buffer): boolean {
    const s = this.sockets[to];
    if (!s || s.destroyed) {
      throw new CollectiveConnectError(
        `rank ${this.rank} has no open connection to ${this.describePeer(to)}`,
      );
    }
    return s.write(this.prefix(frame));
  }

  protected onDrain(to: number, cb: () => void): () => void {
    const s = this.sockets[to]!;
    s.once('drain', cb);
    return () => s.off('drain', cb);
  }

  protected async shutdown(): Promise<void> {
    const closed = [...this.allSockets].map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.destroyed) return resolve();
          s.once('close', () => resolve());
          s.end();
        }),
    );
    await this.closeWithinGrace(Promise.all(closed), () => {
      for (const s of this.allSockets) s.destroy();
    });
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
