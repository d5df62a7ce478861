import { RUNTIME_ENV } from '../config/runtime-env.js';

/** Environment variables of the metrics endpoint (flags win). The host one is not in RUNTIME_ENV (yet). */
export const METRICS_ENV = { port: RUNTIME_ENV.metricsPort, host: RUNTIME_ENV.metricsHost } as const;

/**
 * The port the images and manifests use. The CLI default is 0 (any free port) so that several local processes
 * never collide; option defaults are not declared on the CliOption because the CLI fills them in before the
 * environment could be read.
 */
export const DEFAULT_CLUSTER_METRICS_PORT = 9464;
