/**
 * The collective transport over gRPC (@grpc/grpc-js), per proto/promptmesh/v1/collective.proto.
 *
 * Mesh formation, for rank r:
 *   1. listen(): bind the server (127.0.0.1:0 unless told otherwise) before the peers are known, so the worker can
 *      register its real address with the coordinator.
 *   2. connect(peers): for every peer p, open Subscribe(Hello{job, generation, r}) on p's server; p validates the
 *      tag and answers with a READY frame carrying its own tag, which r checks (it reached the rank it meant).
 *      Subscriptions that arrive before r's own connect() are parked until r knows its tag.
 *   3. connect resolves once r has READY from every peer (it can receive) and every peer has subscribed to r (it
 *      can send), or fails after timeoutMs naming the peers that are missing.
 * Data then flows on the server-streaming responses: r writes frames for p on p's subscription to r. The
 * receiving side is the gRPC client, whose HTTP/2 window we can raise ('grpc-node.flow_control_window'); grpc-js
 * servers do not expose theirs, and its 64 KiB default throttled client->server streams to 130-260 MB/s here.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { CollectiveConfigError, CollectiveConnectError } from './errors.js';
import { decodeFrame, encodeFrame, type Frame, FrameKind } from './frame-codec.js';
import { decodeHello, encodeHello, type Hello, HelloVerifier, proveHello } from './hello.js';
import { MeshTransport } from './mesh-transport.js';
import {
  type ConnectOptions,
  DEFAULT_FLOW_CONTROL_WINDOW,
  DEFAULT_HOST,
  joinAddress,
  type ListenOptions,
  type PeerInfo,
  type TlsFiles,
  validateConnect,
  validatePeers,
} from './options.js';

const SUBSCRIBE_PATH = '/promptmesh.v1.Collective/Subscribe';
/** Largest gRPC message accepted: a chunk of at most 64 MiB plus its header. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024 + 64 * 1024;
const identity = (b: Buffer): Buffer => b;

const SERVICE: grpc.ServiceDefinition = {
  Subscribe: {
    path: SUBSCRIBE_PATH,
    requestStream: false,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: (b: Buffer) => decodeHello(b),
    responseSerialize: identity,
    responseDeserialize: identity,
    originalName: 'subscribe',
  },
};

type Subscription = grpc.ServerWritableStream<Hello, Buffer>;

function channelOptions(tls: TlsFiles | undefined): grpc.ChannelOptions {
  const o: grpc.ChannelOptions = {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    'grpc-node.flow_control_window': DEFAULT_FLOW_CONTROL_WINDOW,
    // Own connections per communicator: close() must not tear down (or be kept alive by) another one's channel.
    'grpc.use_local_subchannel_pool': 1,
    'grpc.enable_retries': 0,
  };
  if (tls?.serverNameOverride) {
    o['grpc.ssl_target_name_override'] = tls.serverNameOverride;
    o['grpc.default_authority'] = tls.serverNameOverride;
  }
  return o;
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new CollectiveConfigError(`cannot read TLS ${what} '${file}': ${(e as Error).message}`, {
      cause: e,
    });
  }
}

export class GrpcTransport extends MeshTransport {
  readonly kind = 'grpc' as const;
  protected readonly prefixBytes = 0;
  private readonly outbound: (Subscription | undefined)[] = [];
  private readonly outboundDead: boolean[] = [];
  private readonly inbound: (grpc.ClientReadableStream<Buffer> | undefined)[] = [];
  private readonly clients: grpc.Client[] = [];
  private parked: Subscription[] = [];
  private readyFrom = new Set<number>();
  /** Checks subscribers' proofs of membership when connect() was given a peer key. */
  private verifier: HelloVerifier | undefined;

  private constructor(
    private readonly server: grpc.Server,
    readonly address: string,
    private readonly tls: TlsFiles | undefined,
  ) {
    super();
  }

  /** Binds the server; peers are learnt later by connect(). */
  static async listen(options: ListenOptions = {}): Promise<GrpcTransport> {
    const host = options.host ?? DEFAULT_HOST;
    const server = new grpc.Server({
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    });
    let creds = grpc.ServerCredentials.createInsecure();
    if (options.tls) {
      const t = options.tls;
      creds = grpc.ServerCredentials.createSsl(
        readPem(t.caFile, 'CA certificate'),
        [{ cert_chain: readPem(t.certFile, 'certificate'), private_key: readPem(t.keyFile, 'private key') }],
        t.requireClientCert ?? true,
      );
    }
    let transport: GrpcTransport | undefined;
    server.addService(SERVICE, {
      Subscribe: (call: Subscription) => transport!.onSubscribe(call),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(joinAddress(host, options.port ?? 0), creds, (err, p) =>
        err
          ? reject(
              new CollectiveConnectError(
                `cannot listen on ${joinAddress(host, options.port ?? 0)}: ${err.message}`,
                {
                  cause: err,
                },
              ),
            )
          : resolve(p),
      ),
    );
    transport = new GrpcTransport(server, joinAddress(host, port), options.tls);
    return transport;
  }

  async connect(peerList: readonly PeerInfo[], options: ConnectOptions): Promise<this> {
    if (this.inboxes) throw new CollectiveConfigError('connect() was already called on this transport');
    const o = validateConnect(options);
    const peers = validatePeers(peerList, o.rank);
    this.attach(peers, o);
    if (o.peerKey) this.verifier = new HelloVerifier(o.peerKey);
    const parked = this.parked;
    this.parked = [];
    for (const call of parked) this.accept(call);

    const creds = this.tls
      ? grpc.credentials.createSsl(
          readPem(this.tls.caFile, 'CA certificate'),
          readPem(this.tls.keyFile, 'private key'),
          readPem(this.tls.certFile, 'certificate'),
        )
      : grpc.credentials.createInsecure();
    const tag: Hello = { jobId: o.jobId, generation: o.generation, rank: o.rank, worldSize: peers.length };
    for (const p of peers) {
      if (p.rank === o.rank) continue;
      // One proof per peer: it is bound to the rank it is sent to.
      const hello = encodeHello(o.peerKey ? { ...tag, proof: proveHello(o.peerKey, tag, p.rank) } : tag);
      this.subscribeTo(p, creds, hello);
    }
    await this.waitForMesh(
      (r) => this.readyFrom.has(r) && Boolean(this.outbound[r]),
      () => {
        const missing: string[] = [];
        for (let r = 0; r < this.worldSize; r++) {
          if (r === this.rank) continue;
          const why = [
            this.readyFrom.has(r) ? '' : 'did not accept our subscription',
            this.outbound[r] ? '' : 'did not subscribe to us',
          ].filter(Boolean);
          if (why.length > 0) missing.push(`${this.describePeer(r)} ${why.join(' and ')}`);
        }
        return missing.join('; ');
      },
    );
    return this;
  }

  private subscribeTo(p: PeerInfo, creds: grpc.ChannelCredentials, hello: Buffer): void {
    const client = new grpc.Client(p.address, creds, channelOptions(this.tls));
    this.clients.push(client);
    const call = client.makeServerStreamRequest<Buffer, Buffer>(SUBSCRIBE_PATH, identity, identity, hello);
    this.inbound[p.rank] = call;
    call.on('data', (buf: Buffer) => {
      let frame: Frame;
      try {
        frame = decodeFrame(buf);
      } catch (e) {
        this.peerLost(p.rank, `it sent a malformed frame (${(e as Error).message})`, e);
        call.cancel();
        return;
      }
      if (this.readyFrom.has(p.rank)) {
        this.inboxes!.deliver(p.rank, frame);
        return;
      }
      if (
        frame.kind !== FrameKind.Ready ||
        frame.jobId !== this.jobId ||
        frame.generation !== this.generation ||
        frame.from !== p.rank
      ) {
        this.failConnect(
          new CollectiveConnectError(
            `${this.describePeer(p.rank)} answered as rank ${frame.from} of job '${frame.jobId}' generation ${frame.generation}, ` +
              `expected rank ${p.rank} of job '${this.jobId}' generation ${this.generation}: the peer list is stale or wrong`,
          ),
        );
        return;
      }
      this.readyFrom.add(p.rank);
      this.meshChanged?.();
    });
    call.on('error', (e: grpc.ServiceError) => {
      if (this.closing) return;
      if (!this.readyFrom.has(p.rank)) {
        this.failConnect(
          new CollectiveConnectError(
            `rank ${this.rank} could not subscribe to ${this.describePeer(p.rank)}: ${grpc.status[e.code] ?? e.code} ${e.details}`,
            { cause: e },
          ),
        );
        return;
      }
      this.peerLost(p.rank, `${grpc.status[e.code] ?? e.code}: ${e.details}`, e);
    });
    call.on('end', () => this.peerLost(p.rank, 'the peer closed its communicator'));
  }

  private onSubscribe(call: Subscription): void {
    if (this.closing) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'this communicator is closing' });
      return;
    }
    if (!this.inboxes) {
      this.parked.push(call);
      call.on('cancelled', () => {
        this.parked = this.parked.filter((c) => c !== call);
      });
      return;
    }
    this.accept(call);
  }

  private refusal(h: Hello): { reason: string; stale: boolean } | undefined {
    if (this.verifier) {
      // Before any comparison that would name this rank's generation or rank to someone who is not a member.
      if (h.jobId !== this.jobId)
        return { reason: `job '${h.jobId}' is not this worker's job`, stale: false };
      const refused = this.verifier.refusal(h, this.rank);
      if (refused) return { reason: refused, stale: h.generation < this.generation };
    }
    const mine = `job '${this.jobId}' generation ${this.generation}`;
    if (h.jobId !== this.jobId)
      return { reason: `job '${h.jobId}' is not this worker's ${mine}`, stale: false };
    if (h.generation < this.generation) {
      return { reason: `generation ${h.generation} is stale: this worker is in ${mine}`, stale: true };
    }
    if (h.generation > this.generation) {
      return { reason: `generation ${h.generation} is newer than this worker's ${mine}`, stale: false };
    }
    if (h.worldSize !== this.worldSize || h.rank >= this.worldSize || h.rank === this.rank) {
      return {
        reason: `rank ${h.rank} of ${h.worldSize} does not fit this worker's rank ${this.rank} of ${this.worldSize}`,
        stale: false,
      };
    }
    if (this.outbound[h.rank]) return { reason: `rank ${h.rank} is already subscribed`, stale: false };
    return undefined;
  }

  private accept(call: Subscription): void {
    const h = call.request;
    const refused = this.refusal(h);
    if (refused) {
      if (refused.stale) this.earlyCounters.staleRefused++;
      else this.earlyCounters.foreignRefused++;
      call.emit('error', {
        code: grpc.status.FAILED_PRECONDITION,
        // With peer authentication, nothing about this rank for a caller that has not proved membership.
        details: this.verifier
          ? `refused: ${refused.reason}`
          : `rank ${this.rank} refused: ${refused.reason}`,
      });
      return;
    }
    this.outbound[h.rank] = call;
    call.on('cancelled', () => {
      this.outboundDead[h.rank] = true;
      this.peerLost(h.rank, 'the peer dropped its subscription (it closed or died)');
    });
    call.on('error', (e: Error) => this.peerLost(h.rank, `stream error: ${e.message}`, e));
    const ready = encodeFrame(
      {
        jobId: this.jobId,
        generation: this.generation,
        step: 0,
        op: 0,
        seq: 0,
        from: this.rank,
        kind: FrameKind.Ready,
        wire: 0,
        totalElements: 0,
      },
      this.jobIdBytes,
      0,
    );
    call.write(ready.buffer);
    this.meshChanged?.();
  }

  protected writeFrame(to: number, frame: Buffer): boolean {
    const call = this.outbound[to];
    if (!call || this.outboundDead[to]) {
      throw new CollectiveConnectError(`rank ${this.rank} has no open stream to ${this.describePeer(to)}`);
    }
    return call.write(frame);
  }

  protected onDrain(to: number, cb: () => void): () => void {
    const call = this.outbound[to]!;
    call.once('drain', cb);
    return () => call.off('drain', cb);
  }

  protected async shutdown(): Promise<void> {
    for (const call of this.parked) call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'closing' });
    this.parked = [];
    // Ending (not cancelling) our outbound streams lets peers receive what we already wrote.
    for (const call of this.outbound) {
      if (call && !call.writableEnded) call.end();
    }
    for (const call of this.inbound) call?.cancel();
    for (const c of this.clients) c.close();
    await this.closeWithinGrace(
      new Promise<void>((resolve) => this.server.tryShutdown(() => resolve())),
      () => this.server.forceShutdown(),
    );
  }
}
