/**
 * T5's span-corruption objective (Raffel et al. 2020, section 3.1.4; `random_spans_noise_mask` and
 * `noise_span_to_unique_sentinel` in the t5 library): about `noiseDensity` of the tokens, in spans of mean length
 * `meanSpanLength`, are dropped from the input and each span is replaced by one sentinel; the target lists every
 * sentinel followed by the tokens it hides, then one final sentinel and </s>.
 *
 *   tokens  : Thank you for inviting me to your party last week
 *   input   : Thank you <X> me to your party <Y> week </s>
 *   target  : <X> for inviting <Y> last <Z> </s>
 */
import type { Rng } from '../../data/rng.js';

export interface SpanCorruptionOptions {
  /** Fraction of tokens hidden (T5: 0.15). */
  noiseDensity: number;
  /** Mean length of a hidden span (T5: 3). */
  meanSpanLength: number;
}

export const T5_SPAN_CORRUPTION: SpanCorruptionOptions = Object.freeze({
  noiseDensity: 0.15,
  meanSpanLength: 3,
});

/** Splits `items` (>= segments) into `segments` positive lengths, uniformly over the compositions. */
function randomSegmentation(rng: Rng, items: number, segments: number): number[] {
  // Choose segments - 1 distinct cut points among the items - 1 gaps (partial Fisher-Yates), as the t5 library
  // does by shuffling a 0/1 indicator of first-in-segment positions.
  const gaps = Array.from({ length: items - 1 }, (_, i) => i + 1);
  for (let i = 0; i < segments - 1; i++) {
    const j = i + Math.floor(rng() * (gaps.length - i));
    const tmp = gaps[i]!;
    gaps[i] = gaps[j]!;
    gaps[j] = tmp;
  }
  const cuts = gaps.slice(0, segments - 1).sort((a, b) => a - b);
  const out: number[] = [];
  let prev = 0;
  for (const c of [...cuts, items]) {
    out.push(c - prev);
    prev = c;
  }
  return out;
}

/**
 * Which of `length` tokens are noise: round(length * density) of them (at least 1, at most length - 1), in
 * round(noise / meanSpanLength) spans (at least 1), each span preceded by a non-noise span, so the sequence starts
 * with kept tokens. Lengths below 2 get no noise.
 */
export function randomSpansNoiseMask(
  length: number,
  rng: Rng,
  options: SpanCorruptionOptions = T5_SPAN_CORRUPTION,
): boolean[] {
  const mask = new Array<boolean>(length).fill(false);
  if (length < 2) return mask;
  const numNoise = Math.min(Math.max(Math.round(length * options.noiseDensity), 1), length - 1);
  const numSpans = Math.min(
    Math.max(Math.round(numNoise / options.meanSpanLength), 1),
    numNoise,
    length - numNoise,
  );
  const noiseLens = randomSegmentation(rng, numNoise, numSpans);
  const keepLens = randomSegmentation(rng, length - numNoise, numSpans);
  let pos = 0;
  for (let s = 0; s < numSpans; s++) {
    pos += keepLens[s]!;
    mask.fill(true, pos, pos + noiseLens[s]!);
    pos += noiseLens[s]!;
  }
  return mask;
}

export interface CorruptedExample {
  /** Kept tokens with one sentinel per hidden span, then </s>. */
  input: number[];
  /** sentinel_0 span_0 sentinel_1 span_1 ... sentinel_n </s>. */
  target: number[];
}

/**
 * Applies span corruption to `tokens` (ids without </s>). `sentinel(i)` is the id of `<extra_id_i>`; the mask is
 * drawn from `rng`, so the same rng state gives the same example.
 */
export function spanCorrupt(
  tokens: readonly number[],
  rng: Rng,
  sentinel: (i: number) => number,
  eosId: number,
  options: SpanCorruptionOptions = T5_SPAN_CORRUPTION,
): CorruptedExample {
  return applyNoiseMask(tokens, randomSpansNoiseMask(tokens.length, rng, options), sentinel, eosId);
}

/** The input/target pair for a given noise mask (exposed so tests can check it on hand-made masks). */
export function applyNoiseMask(
  tokens: readonly number[],
  mask: readonly boolean[],
  sentinel: (i: number) => number,
  eosId: number,
): CorruptedExample {
  if (mask.length !== tokens.length) {
    throw new RangeError(`noise mask has ${mask.length} entries for ${tokens.length} tokens`);
  }
  const input: number[] = [];
  const target: number[] = [];
  let spans = 0;
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]!;
    if (mask[i]) {
      if (i === 0 || !mask[i - 1]) {
        const s = sentinel(spans++);
        input.push(s);
        target.push(s);
      }
      target.push(tok);
    } else {
      input.push(tok);
    }
  }
  target.push(sentinel(spans), eosId);
  input.push(eosId);
  return { input, target };
}
