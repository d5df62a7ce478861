import { checkLengths } from './accuracy.js';

/**
 * Pearson correlation x 100. Fewer than two points, or a constant side, has no defined correlation; we return 0
 * (scipy returns NaN) so that model selection on a validation average keeps working.
 */
export function pearson(x: readonly number[], y: readonly number[]): number {
  checkLengths(x, y);
  const n = x.length;
  if (n < 2) return 0;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i] as number;
    my += y[i] as number;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = (x[i] as number) - mx;
    const dy = (y[i] as number) - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return 0;
  return (100 * sxy) / Math.sqrt(sxx * syy);
}

/** 1-based ranks; tied values share the average of the ranks they span (scipy's 'average' method). */
export function averageRanks(values: readonly number[]): number[] {
  const order = values.map((_, i) => i).sort((a, b) => (values[a] as number) - (values[b] as number));
  const ranks = new Array<number>(values.length);
  let i = 0;
  while (i < order.length) {
    let j = i;
    while (j + 1 < order.length && values[order[j + 1] as number] === values[order[i] as number]) j++;
    const avg = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k] as number] = avg;
    i = j + 1;
  }
  return ranks;
}

/** Spearman rank correlation x 100: Pearson of tie-averaged ranks. */
export function spearman(x: readonly number[], y: readonly number[]): number {
  checkLengths(x, y);
  return pearson(averageRanks(x), averageRanks(y));
}
