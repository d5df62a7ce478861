/**
 * promptmesh data: task registry and formats (GLUE, SuperGLUE, SQuAD, demo), readers, ATTEMPT splits, metrics,
 * the mixture sampler and token-balanced sharding, the synthetic demo suite, and the seeded PRNG.
 * No tfjs here: everything is plain data.
 */
export * from './demo/index.js';
export {
  CursorMismatchError,
  DataFormatError,
  HoldoutTooLargeError,
  MissingDataFileError,
  RecordShapeError,
  UnknownTaskError,
} from './errors.js';
export {
  type LoadedTask,
  type LoadTaskOptions,
  type LocatedRow,
  loadTask,
  type OfficialSplit,
  type ReadOptions,
  readOfficialSplit,
} from './load-task.js';
export * from './metrics/index.js';
export { DEFAULT_MIXING, type MixingOptions, mixtureProbabilities } from './mixture-probabilities.js';
export {
  type MixtureCursor,
  MixtureSampler,
  type MixtureSamplerOptions,
  type MixtureTask,
  type SampledExample,
} from './mixture-sampler.js';
export { parseJsonDocument, parseJsonl, readJsonDocument } from './readers/jsonl.js';
export type { MalformedPolicy, ReadReport } from './readers/read-report.js';
export { newReadReport } from './readers/read-report.js';
export type { SourceRecord } from './readers/source-record.js';
export { parseTsv, type TsvOptions } from './readers/tsv.js';
export {
  hash32,
  hashToUnit,
  mulberry32,
  permutation,
  pick,
  type Rng,
  randInt,
  rngFor,
  shuffleInPlace,
} from './rng.js';
export { shardByTokens } from './shard-by-tokens.js';
export {
  DEFAULT_HOLDOUT,
  DEFAULT_SPLIT_SEED,
  resolveSplitRule,
  type SplitIndices,
  type SplitRule,
  splitIndices,
} from './splits.js';
export { getTask, listTasks, registerTask, resolveTaskName } from './tasks/registry.js';
export {
  type Benchmark,
  DEFAULT_FORMAT_OPTIONS,
  type FileCandidate,
  type FormatOptions,
  type FormattedExample,
  type TaskExample,
  type TaskSpec,
} from './tasks/task-spec.js';
export { padPunctuation, STSB_GRID_LABELS, stsbTarget } from './tasks/text.js';
