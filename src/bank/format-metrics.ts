/** A version's metrics on one line, as `bank ls`/`bank show` and the coordinator's log print them: `k=v k=v`. */
export function formatMetrics(metrics: Readonly<Record<string, number>>): string {
  return Object.entries(metrics)
    .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toPrecision(4)}`)
    .join(' ');
}
