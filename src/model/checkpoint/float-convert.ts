/**
 * Bit-exact conversions between the reduced float formats safetensors stores and float32. Kept free of tfjs so
 * checkpoint code can run before (or without) a backend.
 */

const scratch = new DataView(new ArrayBuffer(4));

function f32Bits(x: number): number {
  scratch.setFloat32(0, x, true);
  return scratch.getUint32(0, true);
}

/** Decodes one IEEE half (binary16) bit pattern. */
export function halfBitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Rounds a number to the nearest binary16 (ties to even, overflow to infinity) and returns its bits. */
export function numberToHalfBits(x: number): number {
  const bits = f32Bits(x);
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Below half the smallest subnormal (2^-25) everything rounds to zero; this also keeps shifts under 32.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = mant & ((1 << shift) - 1);
    let r = mant >>> shift;
    if (rem > half || (rem === half && (r & 1) === 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++;
  return sign | r;
}

/** Rounds a number to the nearest bfloat16 (ties to even) and returns its bits; NaN becomes 0x7fc0 like torch. */
export function numberToBf16Bits(x: number): number {
  const bits = f32Bits(x);
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) & 0x8000) | 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

let halfTable: Float32Array | undefined;

export function f16ToFloat32(bits: Uint16Array): Float32Array {
  if (halfTable === undefined) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfBitsToNumber(h);
  }
  const t = halfTable;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]!]!;
  return out;
}

export function bf16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i]! << 16;
  return out;
}

export function float32ToF16(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = numberToHalfBits(x[i]!);
  return out;
}

export function float32ToBf16(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = numberToBf16Bits(x[i]!);
  return out;
}

function fp8Table(expBits: number, mantBits: number, finiteOnly: boolean): Float32Array {
  const t = new Float32Array(256);
  const bias = (1 << (expBits - 1)) - 1;
  const expMax = (1 << expBits) - 1;
  const mantMax = (1 << mantBits) - 1;
  for (let b = 0; b < 256; b++) {
    const sign = b & 0x80 ? -1 : 1;
    const e = (b >>> mantBits) & expMax;
    const m = b & mantMax;
    if (finiteOnly) {
      // E4M3FN: no infinities; only S.1111.111 is NaN.
      if (e === expMax && m === mantMax) {
        t[b] = Number.NaN;
        continue;
      }
    } else if (e === expMax) {
      t[b] = m === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
      continue;
    }
    t[b] =
      e === 0
        ? sign * (m / (1 << mantBits)) * 2 ** (1 - bias)
        : sign * (1 + m / (1 << mantBits)) * 2 ** (e - bias);
  }
  return t;
}

let e4m3: Float32Array | undefined;
let e5m2: Float32Array | undefined;

export function f8e4m3ToFloat32(bytes: Uint8Array): Float32Array {
  e4m3 ??= fp8Table(4, 3, true);
  const t = e4m3;
  return Float32Array.from(bytes, (b) => t[b]!);
}

export function f8e5m2ToFloat32(bytes: Uint8Array): Float32Array {
  e5m2 ??= fp8Table(5, 2, false);
  const t = e5m2;
  return Float32Array.from(bytes, (b) => t[b]!);
}
