/**
 * Seeded pseudo-random numbers for everything in promptmesh that must be reproducible (splits, shuffles, the
 * mixture sampler, the demo suite). Math.random is never used for data.
 *
 * `mulberry32` is a small, fast 32-bit generator with a full 2^32 period; good enough for shuffles and synthetic
 * data, not for cryptography. `hash32` is a stateless integer mixer so that a value can be derived from
 * (seed, a, b, ...) directly, without advancing a stream: that is what lets the sampler compute step s alone.
 */

/** A stream of uniform numbers in [0, 1). */
export type Rng = () => number;

/** mulberry32 (Tommy Ettinger): returns a generator of floats in [0, 1) seeded by a 32-bit integer. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mix32(h: number): number {
  // murmur3 finaliser: every input bit affects every output bit.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Stateless hash of integers (and strings) to a 32-bit unsigned integer. Order matters: hash32(1, 2) differs
 * from hash32(2, 1). Integers beyond 32 bits are folded (high and low halves both count).
 */
export function hash32(...parts: ReadonlyArray<number | string>): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    if (typeof p === 'string') {
      for (let i = 0; i < p.length; i++) h = mix32(h ^ Math.imul(p.charCodeAt(i) + 1, 0x27d4eb2d));
      h = mix32(h ^ p.length);
    } else {
      const lo = p >>> 0;
      const hi = Math.floor(p / 4294967296) >>> 0;
      h = mix32(h ^ lo);
      h = mix32((h + 0x7f4a7c15) ^ hi);
    }
  }
  return h;
}

/** Stateless uniform in [0, 1) derived from the parts. */
export function hashToUnit(...parts: ReadonlyArray<number | string>): number {
  return hash32(...parts) / 4294967296;
}

/** Generator seeded from several parts, e.g. rngFor(seed, 'split', task). */
export function rngFor(...parts: ReadonlyArray<number | string>): Rng {
  return mulberry32(hash32(...parts));
}

/** Integer in [0, n). */
export function randInt(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

/** A uniformly chosen element. Throws on an empty array. */
export function pick<T>(rng: Rng, items: readonly T[]): T {
  if (items.length === 0) throw new RangeError('pick from an empty array');
  return items[randInt(rng, items.length)] as T;
}

/** In-place Fisher-Yates shuffle; returns the same array. */
export function shuffleInPlace<T>(rng: Rng, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randInt(rng, i + 1);
    const tmp = items[i] as T;
    items[i] = items[j] as T;
    items[j] = tmp;
  }
  return items;
}

/** A random permutation of 0..n-1 (Fisher-Yates), as a Uint32Array to stay small for large tasks. */
export function permutation(rng: Rng, n: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = randInt(rng, i + 1);
    const tmp = p[i] as number;
    p[i] = p[j] as number;
    p[j] = tmp;
  }
  return p;
}
