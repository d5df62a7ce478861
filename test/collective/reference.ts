/**
 * Test inputs and the float64 reference: deterministic pseudo-random floats in [-1, 1) per (seed, rank), and the
 * error bound a correct float32 all-reduce must meet.
 *
 * The bound: summing N float32 values in any order costs at most (N-1) roundings of a partial sum whose magnitude
 * is at most S = sum |x_k|, each off by at most u*S (u = 2^-24, half an ulp), so |result - exact| <= (N-1)*u*S
 * (the gamma_{N-1} bound of Higham, Accuracy and Stability, 4.2, to first order). A 16-bit wire rounds each partial
 * sum that crosses it and the owner's final value: at most N+1 roundings with u_wire = 2^-11 (f16) or 2^-8
 * (bf16), plus half the smallest f16 subnormal (2^-25) per rounding for values near zero. 'mean' adds one division,
 * correctly rounded. The bound is tight enough that a lost or doubled contribution (error ~|x_k|) fails it.
 */
import type { WireFormat } from '../../src/collective/index.js';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gen(seed: number, rank: number): () => number {
  const next = mulberry32(Math.imul(seed, 0x9e3779b1) ^ Math.imul(rank + 1, 0x85ebca6b));
  return () => next() * 2 - 1;
}

export function inputFor(seed: number, rank: number, length: number): Float32Array {
  const g = gen(seed, rank);
  const a = new Float32Array(length);
  for (let i = 0; i < length; i++) a[i] = g();
  return a;
}

export interface Verification {
  /** Elements outside the bound. */
  violations: number;
  /** Largest |error| / bound seen (<= 1 when correct). */
  worstRatio: number;
  firstBad?: { index: number; got: number; exact: number; bound: number };
  /** FNV-style hash of the result's bits: equal on every rank when replicas agree bit for bit. */
  hash: number;
}

export function verify(
  out: Float32Array,
  seed: number,
  worldSize: number,
  op: 'sum' | 'mean',
  wire: WireFormat,
): Verification {
  const gens = Array.from({ length: worldSize }, (_, r) => gen(seed, r));
  const u = 2 ** -24;
  const uw = wire === 'f16' ? 2 ** -11 : wire === 'bf16' ? 2 ** -8 : 0;
  const f32 = new Float32Array(1);
  let violations = 0;
  let worstRatio = 0;
  let firstBad: Verification['firstBad'];
  for (let i = 0; i < out.length; i++) {
    let exact = 0;
    let abs = 0;
    for (const g of gens) {
      f32[0] = g();
      exact += f32[0]!;
      abs += Math.abs(f32[0]!);
    }
    let bound = (worldSize - 1) * u * abs * 1.0001;
    if (worldSize > 1 && uw > 0) bound += (worldSize + 1) * (uw * abs + 2 ** -25);
    if (op === 'mean') {
      exact /= worldSize;
      bound = bound / worldSize + u * (abs / worldSize);
    }
    const err = Math.abs(out[i]! - exact);
    const ratio = bound > 0 ? err / bound : err === 0 ? 0 : Number.POSITIVE_INFINITY;
    if (!(ratio <= 1)) {
      violations++;
      firstBad ??= { index: i, got: out[i]!, exact, bound };
    }
    if (ratio > worstRatio) worstRatio = ratio;
  }
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  let h = 0x811c9dc5;
  for (let i = 0; i < bits.length; i++) h = Math.imul(h ^ bits[i]!, 0x01000193);
  return { violations, worstRatio, firstBad, hash: h >>> 0 };
}
