/**
 * promptmesh as a library: `import { PromptBank, loadT5Model, runJob } from 'promptmesh'`.
 *
 * The entry points a program needs are exported by name; every subsystem is also exported whole as a namespace
 * (`bank`, `methods`, `train`, ...) for the rest. The processes (`promptmesh coordinator`, `worker`, `up`) are the
 * CLI's (`runCli`); `Coordinator` and `Worker` are here for embedding them.
 */
export * as backend from './backend/index.js';
export { selectBackend } from './backend/index.js';
export * as bank from './bank/index.js';
export { DirectoryStore, JetStreamStore, type Manifest, PromptBank } from './bank/index.js';
export { runCli } from './cli/main.js';
export * as collective from './collective/index.js';
export { createCollective } from './collective/index.js';
export { demoJob } from './config/demo-job.js';
export { type JobConfig, parseJobConfig, readJobConfig, type StageConfig } from './config/job-config.js';
export * as data from './data/index.js';
export * as infer from './infer/index.js';
export { evaluateVersion, openServedVersion, PredictEngine } from './infer/index.js';
export * as methods from './methods/index.js';
export { methodFactory, methodNames, type PromptMethod } from './methods/index.js';
export * as checkpoint from './model/checkpoint/index.js';
export { loadT5Model } from './model/load-t5.js';
export { T5Model } from './model/t5/index.js';
export type { HostTensor, TensorMap } from './model/tensor-map.js';
export { loadTokenizer, Tokenizer } from './model/tokenizer/index.js';
export { Coordinator } from './runtime/coordinator/coordinator.js';
export { Worker } from './runtime/worker/worker.js';
export * as serve from './serve/index.js';
export { plotHistorySvg } from './telemetry/plot-svg.js';
export { type HistoryRecord, parseHistory } from './train/history.js';
export { runJob } from './train/run-job.js';
export { Trainer } from './train/trainer.js';
