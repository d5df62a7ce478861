/**
 * `promptmesh.v1.Hello`, the request that opens a gRPC Subscribe stream, through the code generated from
 * proto/promptmesh/v1/collective.proto (src/generated/collective.ts). Sent once per peer and communicator, so
 * the generic encoder costs nothing that matters.
 *
 * Proof of membership, when the communicator has a peer key (a per-generation secret only members can derive;
 * the runtime derives it from the job key, the coordinator's incarnation and the generation):
 * 1. The caller sends a fresh 16-byte nonce, its clock, and mac = HMAC-SHA256(peer key, HELLO_LABEL, job,
 *    generation, caller rank, world size, called rank, nonce, time).
 * 2. The called rank recomputes the MAC with its own job, generation and rank (constant-time comparison), refuses
 *    a time farther than HELLO_MAX_SKEW_MS from its clock, and a nonce it has already seen (replay).
 * The called rank is bound, so a hello captured on its way to one peer opens no other.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Hello as HelloMessage } from '../generated/collective.js';

export const HELLO_LABEL = 'promptmesh-hello-v1';
export const HELLO_MAX_SKEW_MS = 60_000;

export interface HelloProof {
  readonly nonce: Uint8Array;
  readonly timeMs: number;
  readonly mac: Uint8Array;
}

export interface Hello {
  readonly jobId: string;
  readonly generation: number;
  readonly rank: number;
  readonly worldSize: number;
  /** Present when the caller has a peer key. */
  readonly proof?: HelloProof;
}

export function encodeHello(h: Hello): Buffer {
  const { proof, ...tag } = h;
  const bytes = HelloMessage.encode(
    HelloMessage.fromObject({
      ...tag,
      ...(proof ? { nonce: proof.nonce, timeMs: proof.timeMs, mac: proof.mac } : {}),
    }),
  ).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes a Hello; absent fields are 0 / '' (proto3), 64-bit fields are numbers. Throws on malformed input. */
export function decodeHello(buf: Uint8Array): Hello {
  const m = HelloMessage.decode(buf);
  const o = HelloMessage.toObject(m, { longs: Number, defaults: true });
  const tag = { jobId: o.jobId, generation: o.generation, rank: o.rank, worldSize: o.worldSize };
  const mac = m.mac as Uint8Array | undefined;
  if (!mac || mac.length === 0) return tag;
  return { ...tag, proof: { nonce: (m.nonce as Uint8Array) ?? new Uint8Array(0), timeMs: o.timeMs, mac } };
}

function helloMac(key: Uint8Array, h: Hello, to: number, nonce: Uint8Array, timeMs: number): Buffer {
  return createHmac('sha256', key)
    .update(`${HELLO_LABEL}\0${h.jobId}\0${h.generation}\0${h.rank}\0${h.worldSize}\0${to}\0${timeMs}\0`)
    .update(nonce)
    .digest();
}

/** The proof a caller attaches to its hello to rank `to` (step 1). */
export function proveHello(key: Uint8Array, h: Hello, to: number, now = Date.now()): HelloProof {
  const nonce = randomBytes(16);
  return { nonce, timeMs: now, mac: helloMac(key, h, to, nonce, now) };
}

/** Checks proofs of hellos to one rank (step 2); one per communicator, so its nonce memory is per generation. */
export class HelloVerifier {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly key: Uint8Array,
    private readonly clock: () => number = Date.now,
  ) {}

  /** undefined when the proof holds; otherwise a reason that reveals nothing about this rank or generation. */
  refusal(h: Hello, to: number): string | undefined {
    const p = h.proof;
    if (!p) return 'no proof of membership (the caller has no peer key)';
    if (p.nonce.length !== 16) return 'malformed proof of membership';
    const expected = helloMac(this.key, h, to, p.nonce, p.timeMs);
    if (p.mac.length !== expected.length || !timingSafeEqual(Buffer.from(p.mac), expected)) {
      return 'bad proof of membership (not a member of this generation)';
    }
    const now = this.clock();
    if (Math.abs(now - p.timeMs) > HELLO_MAX_SKEW_MS) return 'stale proof of membership (a replayed hello?)';
    const id = Buffer.from(p.nonce).toString('hex');
    if (this.seen.has(id)) return 'replayed hello (nonce already used)';
    for (const [n, t] of this.seen) if (now - t > 2 * HELLO_MAX_SKEW_MS) this.seen.delete(n);
    this.seen.set(id, now);
    return undefined;
  }
}
