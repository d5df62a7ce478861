export { DEFAULT_BATCHER_OPTIONS, DynamicBatcher, type DynamicBatcherOptions } from './dynamic-batcher.js';
export {
  DEFAULT_SERVER_OPTIONS,
  type PredictServer,
  type PredictServerOptions,
  startPredictServer,
  type VersionSource,
} from './predict-server.js';
export { ServeTelemetry } from './serve-telemetry.js';
export { VersionFollower, type VersionFollowerOptions } from './version-follower.js';
