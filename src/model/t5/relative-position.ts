/**
 * T5's relative position buckets, computed exactly as Hugging Face transformers does (including its float32
 * arithmetic, so boundary positions fall into the same bucket).
 * relativePosition = keyPosition - queryPosition.
 */
export function relativePositionBucket(
  relativePosition: number,
  bidirectional: boolean,
  numBuckets: number,
  maxDistance: number,
): number {
  let buckets = 0;
  let nb = numBuckets;
  let rp = relativePosition;
  if (bidirectional) {
    nb = Math.floor(nb / 2);
    if (rp > 0) buckets += nb;
    rp = Math.abs(rp);
  } else {
    rp = -Math.min(rp, 0);
  }
  const maxExact = Math.floor(nb / 2);
  if (rp < maxExact) return buckets + rp;
  const f = Math.fround;
  const scaled = f(
    f(f(Math.log(f(f(rp) / maxExact))) / f(Math.log(maxDistance / maxExact))) * (nb - maxExact),
  );
  const large = Math.min(maxExact + Math.trunc(scaled), nb - 1);
  return buckets + large;
}

/** Bucket ids for a [queryLength, keyLength] grid, row-major. */
export function relativePositionBuckets(
  queryLength: number,
  keyLength: number,
  bidirectional: boolean,
  numBuckets: number,
  maxDistance: number,
  queryOffset = 0,
): Int32Array {
  const out = new Int32Array(queryLength * keyLength);
  for (let i = 0; i < queryLength; i++) {
    for (let j = 0; j < keyLength; j++) {
      out[i * keyLength + j] = relativePositionBucket(
        j - (i + queryOffset),
        bidirectional,
        numBuckets,
        maxDistance,
      );
    }
  }
  return out;
}
