import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { MetricDefinition, MetricRole } from './metric-definitions.js';

const REDUNDANT_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/**
 * One registry per process, never prom-client's global one: tests run a coordinator and workers in one process,
 * and a library must not register metrics in its host application's default registry behind its back.
 */
export function createProcessRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // prom-client exports these totals as gauges named `_total`, which promtool rejects (a `_total` name promises a
  // counter); each is the sum over the `type` label of the metric without the suffix, so nothing is lost.
  for (const name of REDUNDANT_DEFAULTS) registry.removeSingleMetric(name);
  return registry;
}

function check(def: MetricDefinition, type: MetricDefinition['type'], role: MetricRole): void {
  if (def.type !== type) throw new Error(`metric ${def.name} is a ${def.type}, not a ${type}`);
  if (!def.roles.includes(role)) throw new Error(`metric ${def.name} is not exported by the ${role}`);
}

type Collect = () => void | Promise<void>;

export function makeCounter(registry: Registry, role: MetricRole, def: MetricDefinition): Counter<string> {
  check(def, 'counter', role);
  return new Counter({ name: def.name, help: def.help, labelNames: [...def.labels], registers: [registry] });
}

export function makeGauge(
  registry: Registry,
  role: MetricRole,
  def: MetricDefinition,
  collect?: (g: Gauge<string>) => void,
): Gauge<string> {
  check(def, 'gauge', role);
  const c: Collect | undefined = collect
    ? function (this: Gauge<string>) {
        collect(this);
      }
    : undefined;
  return new Gauge({
    name: def.name,
    help: def.help,
    labelNames: [...def.labels],
    registers: [registry],
    ...(c ? { collect: c } : {}),
  });
}

export function makeHistogram(
  registry: Registry,
  role: MetricRole,
  def: MetricDefinition,
): Histogram<string> {
  check(def, 'histogram', role);
  return new Histogram({
    name: def.name,
    help: def.help,
    labelNames: [...def.labels],
    buckets: [...(def.buckets ?? [])],
    registers: [registry],
  });
}
