/**
 * `promptmesh.v1.Hello`, the request that opens a gRPC Subscribe stream, through the code generated from
 * proto/promptmesh/v1/collective.proto (src/generated/collective.ts). Sent once per peer and communicator, so
 * the generic encoder costs nothing that matters.
 */
import { Hello as HelloMessage } from '../generated/collective.js';

export interface Hello {
  readonly jobId: string;
  readonly generation: number;
  readonly rank: number;
  readonly worldSize: number;
}

export function encodeHello(h: Hello): Buffer {
  const bytes = HelloMessage.encode(HelloMessage.fromObject({ ...h })).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes a Hello; absent fields are 0 / '' (proto3), 64-bit fields are numbers. Throws on malformed input. */
export function decodeHello(buf: Uint8Array): Hello {
  const o = HelloMessage.toObject(HelloMessage.decode(buf), { longs: Number, defaults: true });
  return { jobId: o.jobId, generation: o.generation, rank: o.rank, worldSize: o.worldSize };
}
