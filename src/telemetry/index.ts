export { promptmeshVersion } from './build-info.js';
export {
  type CommittedStepSample,
  type CoordinatorStatusSample,
  CoordinatorTelemetry,
  type CoordinatorTelemetryOptions,
} from './coordinator-telemetry.js';
export {
  createLogger,
  LOG_ENV,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFields,
  type LogFormat,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  LogOptionError,
  LogRateLimiter,
  resolveLogOptions,
} from './logger.js';
export {
  CHECKPOINT_KINDS,
  COORDINATOR_PHASES,
  DROPPED_SUBJECTS,
  DURATION_BUCKETS,
  MEMBERSHIP_REASONS,
  METRICS,
  type MetricDefinition,
  type MetricKey,
  type MetricRole,
  type MetricType,
  metricNames,
  SERVE_BATCH_BUCKETS,
  SERVE_LATENCY_BUCKETS,
  STEP_PHASES,
  seriesNames,
  WORKER_PHASES,
} from './metric-definitions.js';
export { DEFAULT_CLUSTER_METRICS_PORT, METRICS_ENV } from './metrics-options.js';
export {
  type MetricsServer,
  MetricsServerError,
  type MetricsServerOptions,
  type ProbeResult,
  startMetricsServer,
} from './metrics-server.js';
export { createProcessRegistry } from './registry.js';
export {
  type CollectiveStatsSample,
  type EvalSample,
  type WorkerStepSample,
  WorkerTelemetry,
} from './worker-telemetry.js';
