/**
 * Hand-written protobuf encoding of `promptmesh.v1.Frame` (proto/promptmesh/v1/collective.proto): the one message
 * of the wire contract not encoded by the generated code (src/generated/collective.ts), because it carries the
 * gradients.
 *
 * Why: the generated encoder takes the payload as a separate `bytes` value and copies it into a fresh writer
 * buffer, then gRPC copies it again. Here the caller gets the frame buffer with the header already written and
 * fills the payload in place (converting f32 -> f16/bf16 straight into it), so a chunk is copied once before
 * gRPC's own framing copy; and `pad` is sized so the payload lands 8-byte aligned on the receiving side, where it
 * is read through a Float32Array/Uint16Array view without another copy. bench/frame-codec.ts measures both
 * encoders; test/collective/frame-codec.test.ts checks byte compatibility both ways against the generated code.
 */
import { FrameKind as FrameKindCodes } from '../generated/collective.js';

export const FrameKind = {
  Data: FrameKindCodes.FRAME_KIND_DATA,
  Abort: FrameKindCodes.FRAME_KIND_ABORT,
  Ready: FrameKindCodes.FRAME_KIND_READY,
} as const;
export type FrameKindCode = (typeof FrameKind)[keyof typeof FrameKind];

export interface FrameHeader {
  readonly jobId: string;
  readonly generation: number;
  readonly step: number;
  readonly op: number;
  readonly seq: number;
  readonly from: number;
  readonly kind: number;
  /** WireFormat code (1 f32, 2 f16, 3 bf16), 0 for frames without payload. */
  readonly wire: number;
  readonly totalElements: number;
  readonly reason?: string;
}

export interface Frame extends FrameHeader {
  readonly payload: Uint8Array;
}

/**
 * gRPC puts a 5-byte length prefix before each message and hands the receiver the message at offset 5 of a freshly
 * allocated (8-aligned) buffer; the TCP transport mirrors that layout. Alignment is computed relative to it.
 */
export const MESSAGE_PREFIX_BYTES = 5;

const WT_VARINT = 0;
const WT_I64 = 1;
const WT_LEN = 2;
const WT_I32 = 5;

function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(buf: Uint8Array, pos: number, v: number): number {
  while (v >= 0x80) {
    buf[pos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

/** Size of a varint field whose number is below 16 (one tag byte). */
function uintFieldSize(v: number): number {
  return 1 + varintSize(v);
}

function writeUint(buf: Uint8Array, pos: number, field: number, v: number): number {
  buf[pos++] = (field << 3) | WT_VARINT;
  return writeVarint(buf, pos, v);
}

function writeBytes(buf: Uint8Array, pos: number, field: number, bytes: Uint8Array): number {
  buf[pos++] = (field << 3) | WT_LEN;
  pos = writeVarint(buf, pos, bytes.length);
  buf.set(bytes, pos);
  return pos + bytes.length;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export interface EncodedFrame {
  /** `prefixBytes` reserved bytes, then the encoded Frame. */
  readonly buffer: Buffer;
  /** Where the payload's bytes go (relative to `buffer`); the caller fills `payloadLength` bytes there. */
  readonly payloadOffset: number;
}

/**
 * Encodes a frame header and reserves room for a payload of `payloadLength` bytes. `prefixBytes` leaves space at
 * the front for a transport's own length prefix (the TCP transport writes gRPC-style 5 bytes there).
 */
export function encodeFrame(
  h: FrameHeader,
  jobIdBytes: Uint8Array,
  payloadLength: number,
  prefixBytes = 0,
): EncodedFrame {
  const reason = h.reason ? textEncoder.encode(h.reason) : undefined;
  let headerLen =
    (jobIdBytes.length > 0 ? 1 + varintSize(jobIdBytes.length) + jobIdBytes.length : 0) +
    uintFieldSize(h.generation) +
    uintFieldSize(h.step) +
    uintFieldSize(h.op) +
    uintFieldSize(h.seq) +
    uintFieldSize(h.from) +
    uintFieldSize(h.kind) +
    uintFieldSize(h.wire) +
    uintFieldSize(h.totalElements) +
    (reason ? 1 + varintSize(reason.length) + reason.length : 0);
  let pad = -1;
  if (payloadLength > 0) {
    const payloadHeader = 1 + varintSize(payloadLength);
    pad = (8 - ((MESSAGE_PREFIX_BYTES + headerLen + 2 + payloadHeader) % 8)) % 8;
    headerLen += 2 + pad + payloadHeader;
  }
  const buffer = Buffer.allocUnsafe(prefixBytes + headerLen + payloadLength);
  let pos = prefixBytes;
  if (jobIdBytes.length > 0) pos = writeBytes(buffer, pos, 1, jobIdBytes);
  pos = writeUint(buffer, pos, 2, h.generation);
  pos = writeUint(buffer, pos, 3, h.step);
  pos = writeUint(buffer, pos, 4, h.op);
  pos = writeUint(buffer, pos, 5, h.seq);
  pos = writeUint(buffer, pos, 6, h.from);
  pos = writeUint(buffer, pos, 7, h.kind);
  pos = writeUint(buffer, pos, 8, h.wire);
  pos = writeUint(buffer, pos, 9, h.totalElements);
  if (reason) pos = writeBytes(buffer, pos, 10, reason);
  if (payloadLength > 0) {
    buffer[pos++] = (14 << 3) | WT_LEN;
    buffer[pos++] = pad;
    buffer.fill(0, pos, pos + pad);
    pos += pad;
    buffer[pos++] = (15 << 3) | WT_LEN;
    pos = writeVarint(buffer, pos, payloadLength);
  }
  return { buffer, payloadOffset: pos };
}

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  varint(): number {
    let result = 0;
    let mul = 1;
    for (;;) {
      if (this.pos >= this.buf.length) throw new RangeError('truncated varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
      if (mul > 2 ** 63) throw new RangeError('varint longer than 64 bits');
    }
  }

  bytes(): Uint8Array {
    const len = this.varint();
    const end = this.pos + len;
    if (end > this.buf.length) throw new RangeError('truncated length-delimited field');
    const out = this.buf.subarray(this.pos, end);
    this.pos = end;
    return out;
  }

  skip(wireType: number): void {
    if (wireType === WT_VARINT) this.varint();
    else if (wireType === WT_LEN) this.bytes();
    else if (wireType === WT_I64) this.pos += 8;
    else if (wireType === WT_I32) this.pos += 4;
    else throw new RangeError(`unsupported protobuf wire type ${wireType}`);
  }
}

const EMPTY: Uint8Array = new Uint8Array(0);

/** Decodes a Frame; `payload` is a view into `buf` (no copy). Throws RangeError on malformed input. */
export function decodeFrame(buf: Uint8Array): Frame {
  const r = new Reader(buf);
  let jobId = '';
  let generation = 0;
  let step = 0;
  let op = 0;
  let seq = 0;
  let from = 0;
  let kind = 0;
  let wire = 0;
  let totalElements = 0;
  let reason: string | undefined;
  let payload = EMPTY;
  while (r.pos < buf.length) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wt = tag & 7;
    if (wt === WT_VARINT) {
      const v = r.varint();
      if (field === 2) generation = v;
      else if (field === 3) step = v;
      else if (field === 4) op = v;
      else if (field === 5) seq = v;
      else if (field === 6) from = v;
      else if (field === 7) kind = v;
      else if (field === 8) wire = v;
      else if (field === 9) totalElements = v;
    } else if (wt === WT_LEN && (field === 1 || field === 10 || field === 15)) {
      const b = r.bytes();
      if (field === 1) jobId = textDecoder.decode(b);
      else if (field === 10) reason = textDecoder.decode(b);
      else payload = b;
    } else {
      r.skip(wt);
    }
  }
  return { jobId, generation, step, op, seq, from, kind, wire, totalElements, reason, payload };
}
