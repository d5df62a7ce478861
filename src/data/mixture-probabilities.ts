/**
 * Task mixing rates (T5 section 3.5.2, mT5): examples-proportional with an optional size cap K ("artificial
 * dataset size limit") and temperature T:
 *     p_i ∝ (min(n_i, K) / Σ_j min(n_j, K)) ^ (1 / T)
 * K = Infinity and T = 1 is plain examples-proportional mixing (what the ATTEMPT and TPT code do); T → ∞
 * approaches equal mixing.
 */

export interface MixingOptions {
  /** Size cap K; Infinity (default) = no cap. */
  cap?: number;
  /** Temperature T >= 1 flattens the mixture; default 1. */
  temperature?: number;
}

export const DEFAULT_MIXING: Required<MixingOptions> = Object.freeze({
  cap: Number.POSITIVE_INFINITY,
  temperature: 1,
});

export function mixtureProbabilities(sizes: readonly number[], options: MixingOptions = {}): number[] {
  const cap = options.cap ?? DEFAULT_MIXING.cap;
  const temperature = options.temperature ?? DEFAULT_MIXING.temperature;
  if (!(cap > 0)) throw new RangeError(`mixing cap must be > 0, got ${cap}`);
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`mixing temperature must be a positive finite number, got ${temperature}`);
  }
  for (const n of sizes) {
    if (!Number.isInteger(n) || n < 0)
      throw new RangeError(`task sizes must be non-negative integers, got ${n}`);
  }
  const capped = sizes.map((n) => Math.min(n, cap));
  const total = capped.reduce((a, b) => a + b, 0);
  if (total === 0) throw new RangeError('every task in the mixture is empty');
  const w = capped.map((c) => (c === 0 ? 0 : (c / total) ** (1 / temperature)));
  const z = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / z);
}
