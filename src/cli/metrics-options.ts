import { METRICS_ENV } from '../telemetry/index.js';
import { type CliContext, type CliOption, optString, UsageError } from './command.js';

/** The metrics endpoint's flags (telemetry/metrics-options.ts names the variables and the cluster port). */
export const METRICS_OPTIONS: CliOption[] = [
  {
    name: 'metrics-port',
    type: 'string',
    value: 'PORT',
    description: `serve /metrics, /healthz, /readyz on PORT (env ${METRICS_ENV.port}; default 0 = any free port; off = none)`,
  },
  {
    name: 'metrics-host',
    type: 'string',
    value: 'HOST',
    description: `interface for the metrics port (env ${METRICS_ENV.host}; default 127.0.0.1; 0.0.0.0 in a pod)`,
  },
];

export interface MetricsListen {
  host: string;
  port: number;
}

/** Where to serve metrics, or undefined when turned off. Flags win over the environment. */
export function readMetricsListen(
  ctx: CliContext,
  env: NodeJS.ProcessEnv = process.env,
): MetricsListen | undefined {
  const rawPort = optString(ctx, 'metrics-port') ?? env[METRICS_ENV.port] ?? '0';
  const host = optString(ctx, 'metrics-host') ?? env[METRICS_ENV.host] ?? '127.0.0.1';
  if (rawPort === 'off') return undefined;
  const port = Number(rawPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(
      `--metrics-port (or ${METRICS_ENV.port}) expects 0-65535 or 'off', got '${rawPort}'`,
    );
  }
  if (!host) throw new UsageError(`--metrics-host (or ${METRICS_ENV.host}) must not be empty`);
  return { host, port };
}
