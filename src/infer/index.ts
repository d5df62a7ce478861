export {
  EVAL_SPLITS,
  type EvalSplit,
  EvalSplitError,
  type EvaluateVersionOptions,
  evaluateVersion,
  reportMetrics,
} from './evaluate-version.js';
export {
  PredictEngine,
  type PredictEngineOptions,
  type PredictInput,
  UnservedTaskError,
} from './predict-engine.js';
export { type ParsedRow, PredictRowError, parsePredictJsonl, parsePredictRow } from './predict-rows.js';
export { type OpenVersionOptions, openServedVersion, type ServedVersion } from './served-version.js';
export {
  methodFromVersion,
  servableTasks,
  stageConfigHash,
  stageOfVersion,
  VersionStageError,
} from './version-method.js';
