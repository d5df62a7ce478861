import { type CliContext, type CliOption, optString, UsageError } from '../cli/command.js';
import { RUNTIME_ENV } from '../config/runtime-env.js';

/** Environment variables of the metrics endpoint (flags win). The host one is not in RUNTIME_ENV (yet). */
export const METRICS_ENV = { port: RUNTIME_ENV.metricsPort, host: RUNTIME_ENV.metricsHost } as const;

/**
 * The port the images and manifests use. The CLI default is 0 (any free port) so that several local processes
 * never collide; option defaults are not declared on the CliOption because the CLI fills them in before the
 * environment could be read.
 */
export const DEFAULT_CLUSTER_METRICS_PORT = 9464;

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
