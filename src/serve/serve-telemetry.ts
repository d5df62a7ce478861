/** The inference server's Prometheus metrics (definitions in telemetry/metric-definitions.ts, role `server`). */
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ServedVersion } from '../infer/index.js';
import { METRICS } from '../telemetry/index.js';
import { createProcessRegistry, makeCounter, makeGauge, makeHistogram } from '../telemetry/registry.js';

const RATE_WINDOW_MS = 10_000;

export class ServeTelemetry {
  readonly registry: Registry;
  private readonly requestSeconds: Histogram<string>;
  private readonly batchSize: Histogram<string>;
  private readonly examples: Counter<string>;
  private readonly versionInfo: Gauge<string>;
  private readonly switches: Counter<string>;
  /** (time ms, rows) of recent passes, for examples/s. */
  private recent: [number, number][] = [];

  constructor(registry: Registry = createProcessRegistry()) {
    this.registry = registry;
    this.requestSeconds = makeHistogram(registry, 'server', METRICS.serveRequestSeconds);
    this.batchSize = makeHistogram(registry, 'server', METRICS.serveBatchSize);
    this.examples = makeCounter(registry, 'server', METRICS.serveExamples);
    makeGauge(registry, 'server', METRICS.serveExamplesPerSecond, (g) => g.set(this.examplesPerSecond()));
    this.versionInfo = makeGauge(registry, 'server', METRICS.serveVersionInfo);
    this.switches = makeCounter(registry, 'server', METRICS.serveVersionSwitches);
  }

  request(route: string, code: number, seconds: number): void {
    this.requestSeconds.observe({ route, code: String(code) }, seconds);
  }

  batch(tasks: readonly string[]): void {
    this.batchSize.observe(tasks.length);
    const counts = new Map<string, number>();
    for (const t of tasks) counts.set(t, (counts.get(t) ?? 0) + 1);
    for (const [task, n] of counts) this.examples.inc({ task }, n);
    this.recent.push([performance.now(), tasks.length]);
  }

  examplesPerSecond(): number {
    const now = performance.now();
    this.recent = this.recent.filter(([t]) => now - t <= RATE_WINDOW_MS);
    return this.recent.reduce((a, [, n]) => a + n, 0) / (RATE_WINDOW_MS / 1000);
  }

  version(from: ServedVersion | undefined, to: ServedVersion): void {
    this.versionInfo.reset();
    const m = to.manifest;
    this.versionInfo.set({ version: m.id, job: m.job, stage: to.stage.name, method: m.method }, 1);
    if (from) this.switches.inc();
  }
}
