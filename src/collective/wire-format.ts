/**
 * Element encodings on the wire, and the kernels that combine a received payload with the local buffer.
 *
 * f16 and bf16 halve the bytes sent at the cost of precision (f16: 11-bit significand, range +-65504, larger
 * magnitudes become infinity, so scale gradients first as mixed-precision training does; bf16: 8-bit significand,
 * f32's range). Both round to nearest, ties to even. Every partial sum that crosses the wire is rounded, so
 * error grows with the number of ranks; see docs/collective.md for the bound the tests use.
 */
import { CollectiveConfigError } from './errors.js';

export type WireFormat = 'f32' | 'f16' | 'bf16';

export const WIRE_CODE: Readonly<Record<WireFormat, number>> = { f32: 1, f16: 2, bf16: 3 };

export function bytesPerElement(wire: WireFormat): number {
  return wire === 'f32' ? 4 : 2;
}

export function parseWireFormat(w: string | undefined): WireFormat {
  if (w === undefined) return 'f32';
  if (w === 'f32' || w === 'f16' || w === 'bf16') return w;
  throw new CollectiveConfigError(`wire format '${w}' is not one of f32, f16, bf16`);
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** binary32 bits -> binary16 bits, round to nearest even. */
export function f32BitsToF16(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) !== 0)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the significand correctly bumps the exponent (up to infinity).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
  return sign | h;
}

/** binary32 bits -> bfloat16 bits, round to nearest even; NaN stays NaN. */
export function f32BitsToBf16(b: number): number {
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** All 65536 binary16 values as float32: decoding is a table lookup. */
const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    let v: number;
    if (exp === 0) v = mant * 2 ** -24;
    else if (exp === 0x1f) v = mant === 0 ? Number.POSITIVE_INFINITY : Number.NaN;
    else v = (1 + mant / 1024) * 2 ** (exp - 15);
    t[h] = sign * v;
  }
  return t;
})();

export function f16ToF32(h: number): number {
  return F16_TABLE[h & 0xffff]!;
}

export function bf16ToF32(h: number): number {
  scratchU32[0] = (h & 0xffff) << 16;
  return scratchF32[0]!;
}

function u16View(bytes: Uint8Array, count: number): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, count);
  return new Uint16Array(bytes.slice(0, count * 2).buffer);
}

function f32View(bytes: Uint8Array, count: number): Float32Array {
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, count);
  // Rare: a frame not laid out by our encoder (or a tiny TCP frame inside a larger socket read).
  return new Float32Array(bytes.slice(0, count * 4).buffer);
}

/** Writes src[off, off+count) into `dst` (which has room for count*bytesPerElement bytes) in `wire` format. */
export function encodeInto(
  wire: WireFormat,
  src: Float32Array,
  off: number,
  count: number,
  dst: Uint8Array,
): void {
  if (wire === 'f32') {
    dst.set(new Uint8Array(src.buffer, src.byteOffset + off * 4, count * 4));
    return;
  }
  const bits = new Uint32Array(src.buffer, src.byteOffset + off * 4, count);
  // dst comes from encodeFrame, which aligns payloads to 8 bytes; a misaligned one is written bytewise.
  if (dst.byteOffset % 2 === 0) {
    const out = new Uint16Array(dst.buffer, dst.byteOffset, count);
    if (wire === 'f16') for (let i = 0; i < count; i++) out[i] = f32BitsToF16(bits[i]!);
    else for (let i = 0; i < count; i++) out[i] = f32BitsToBf16(bits[i]!);
  } else {
    for (let i = 0; i < count; i++) {
      const h = wire === 'f16' ? f32BitsToF16(bits[i]!) : f32BitsToBf16(bits[i]!);
      dst[2 * i] = h & 0xff;
      dst[2 * i + 1] = h >>> 8;
    }
  }
}

/** dst[off + i] += decode(payload)[i] for i < count. */
export function decodeAdd(
  wire: WireFormat,
  payload: Uint8Array,
  dst: Float32Array,
  off: number,
  count: number,
): void {
  if (wire === 'f32') {
    const src = f32View(payload, count);
    for (let i = 0; i < count; i++) dst[off + i]! += src[i]!;
  } else if (wire === 'f16') {
    const src = u16View(payload, count);
    for (let i = 0; i < count; i++) dst[off + i]! += F16_TABLE[src[i]!]!;
  } else {
    const src = u16View(payload, count);
    for (let i = 0; i < count; i++) {
      scratchU32[0] = src[i]! << 16;
      // Float32Array stores round the double sum once: equal to an IEEE binary32 addition.
      dst[off + i]! += scratchF32[0]!;
    }
  }
}

/** dst[off + i] = decode(payload)[i] for i < count. */
export function decodeCopy(
  wire: WireFormat,
  payload: Uint8Array,
  dst: Float32Array,
  off: number,
  count: number,
): void {
  if (wire === 'f32') {
    dst.set(f32View(payload, count), off);
  } else if (wire === 'f16') {
    const src = u16View(payload, count);
    for (let i = 0; i < count; i++) dst[off + i] = F16_TABLE[src[i]!]!;
  } else {
    const src = u16View(payload, count);
    const bits = new Uint32Array(dst.buffer, dst.byteOffset + off * 4, count);
    for (let i = 0; i < count; i++) bits[i] = src[i]! << 16;
  }
}

/**
 * Rounds dst[off, off+count) to what the wire can carry. The rank that owns a fully reduced block rounds its own
 * copy before sending it, so every rank ends with bit-identical results (replicas must not drift).
 */
export function roundTrip(wire: WireFormat, dst: Float32Array, off: number, count: number): void {
  if (wire === 'f32') return;
  const bits = new Uint32Array(dst.buffer, dst.byteOffset + off * 4, count);
  if (wire === 'f16') {
    for (let i = 0; i < count; i++) dst[off + i] = F16_TABLE[f32BitsToF16(bits[i]!)]!;
  } else {
    for (let i = 0; i < count; i++) bits[i] = f32BitsToBf16(bits[i]!) << 16;
  }
}
