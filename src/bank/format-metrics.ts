/** One metric value as every command prints it: integers as they are, others to 4 significant digits. */
export function formatMetricValue(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toPrecision(4);
}

/** A version's metrics on one line, as `bank ls`/`bank show` and the coordinator's log print them: `k=v k=v`. */
export function formatMetrics(metrics: Readonly<Record<string, number>>): string {
  return Object.entries(metrics)
    .map(([k, v]) => `${k}=${formatMetricValue(v)}`)
    .join(' ');
}
