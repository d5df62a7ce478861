/**
 * The statistics of the methods bench (bench/methods.ts), as pure functions: a value's mean and spread over seeds,
 * and a claim's verdict from per-seed paired differences.
 */

/** A score over seeds: the values in seed order, their mean, sample standard deviation (n - 1), min and max. */
export interface SeedStat {
  values: number[];
  n: number;
  mean: number;
  /** Sample standard deviation; null with fewer than two values (no spread to speak of). */
  sd: number | null;
  min: number;
  max: number;
}

export function seedStat(values: readonly number[]): SeedStat {
  if (values.length === 0) throw new RangeError('seedStat: no values');
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = n < 2 ? null : Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  return { values: [...values], n, mean, sd, min: Math.min(...values), max: Math.max(...values) };
}

export const VERDICTS = [
  'holds',
  'does not hold',
  'inconclusive (difference within spread)',
  'inconclusive (one seed)',
] as const;
export type Verdict = (typeof VERDICTS)[number];

/**
 * The verdict on "A beats B" from the per-seed differences A - B (same seed, same task): with mean m and sample
 * standard deviation s of the differences, 'holds' when m > s (A ahead by more than the seeds disagree),
 * 'does not hold' when m <= -s (B ahead by at least that much, or no difference at all: m = s = 0), otherwise
 * 'inconclusive (difference within spread)'. With three seeds, m > s is a paired t of more than sqrt(3) = 1.73
 * (one-sided p about 0.11): a lenient bar, so 'holds' means "consistent across these seeds", not "significant".
 */
export function pairedVerdict(differences: readonly number[]): Verdict {
  if (differences.length < 2) return 'inconclusive (one seed)';
  const { mean, sd } = seedStat(differences);
  const s = sd ?? 0;
  if (mean > s) return 'holds';
  if (mean <= -s) return 'does not hold';
  return 'inconclusive (difference within spread)';
}

/** Per-seed differences a[seed] - b[seed] over the seeds both have, in `seeds` order. */
export function pairedDifferences(
  seeds: readonly number[],
  a: ReadonlyMap<number, number>,
  b: ReadonlyMap<number, number>,
): { seeds: number[]; differences: number[] } {
  const both = seeds.filter((s) => a.has(s) && b.has(s));
  return { seeds: both, differences: both.map((s) => a.get(s)! - b.get(s)!) };
}

/** "12.3 ± 4.5" (or "12.3" with no spread); `sign` prints a leading + on positive values. */
export function formatStat(s: Pick<SeedStat, 'mean' | 'sd'>, sign = false): string {
  const m = `${sign && s.mean > 0 ? '+' : ''}${s.mean.toFixed(1)}`;
  return s.sd === null ? m : `${m} ± ${s.sd.toFixed(1)}`;
}
