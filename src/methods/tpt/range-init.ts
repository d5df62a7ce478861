import * as tf from '@tensorflow/tfjs-core';
import { permutation, rngFor } from '../../data/rng.js';
import type { T5Model } from '../../model/t5/index.js';

/** pad, </s>, <unk>: never used to initialise a bank or prompt. */
const SPECIAL_IDS = 3;

/**
 * The released TPT code's "frequent" initialisation: frozen embedding rows of `n` distinct ids drawn from
 * [lo, hi) ([100, 1000) for the bank, [100, 600) for the task prompt).
 *
 * Tiny vocabularies (test models) cannot hold the range: it is clamped to [0, vocabSize), then widened downwards
 * (never below the special ids) until it holds `n` ids; if the whole vocabulary is smaller than `n`, ids repeat,
 * since distinctness is then impossible.
 */
export function rangeInit(
  model: T5Model,
  n: number,
  range: readonly [number, number],
  seed: number,
  label: string,
): Float32Array {
  const hi = Math.min(range[1], model.config.vocabSize);
  const lo = Math.max(SPECIAL_IDS, Math.min(range[0], hi - n));
  const pool = Math.max(1, hi - lo);
  const perm = permutation(rngFor(seed, 'range-init', label), pool);
  const ids = Int32Array.from({ length: n }, (_, i) => lo + perm[i % pool]!);
  return tf.tidy(() => tf.gather(model.shared, tf.tensor1d(ids, 'int32')).dataSync() as Float32Array);
}
