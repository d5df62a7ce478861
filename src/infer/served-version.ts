/**
 * Opens a bank version for inference: resolves the reference (id, prefix, tag, JOB@head), finds the stage of the
 * job config that made it, and rebuilds its method from the version's tensors on a loaded backbone.
 */
import type { Manifest, PromptBank } from '../bank/index.js';
import type { JobConfig, StageConfig } from '../config/job-config.js';
import type { PromptMethod } from '../methods/index.js';
import type { T5Model } from '../model/t5/index.js';
import type { TextEncoder } from '../train/batching.js';
import type { EvalMode } from '../train/evaluate.js';
import { PredictEngine } from './predict-engine.js';
import { methodFromVersion, servableTasks, stageOfVersion } from './version-method.js';

export interface ServedVersion {
  manifest: Manifest;
  stage: StageConfig;
  method: PromptMethod;
  engine: PredictEngine;
  dispose(): void;
}

export interface OpenVersionOptions {
  stageName?: string;
  /** Default: the stage's evalMode, so predictions are the ones its evaluation scored. */
  mode?: EvalMode;
  /** Default: the stage's evalBatchSize. */
  batchSize?: number;
  /** Where the job config came from, for messages. */
  source?: string;
}

export async function openServedVersion(
  bank: PromptBank,
  ref: string,
  job: JobConfig,
  model: T5Model,
  tokenizer: TextEncoder,
  opts: OpenVersionOptions = {},
): Promise<ServedVersion> {
  const manifest = await bank.get(ref);
  const { stage } = stageOfVersion(job, manifest, {
    ...(opts.stageName !== undefined ? { stageName: opts.stageName } : {}),
    ...(opts.source !== undefined ? { source: opts.source } : {}),
  });
  const tensors = await bank.load(manifest.id);
  const method = methodFromVersion(job, stage, model, tensors);
  const served = servableTasks(stage);
  const engine = new PredictEngine(model, tokenizer, method, {
    maxSourceLength: job.maxSourceLength,
    maxTargetLength: job.maxTargetLength,
    mode: opts.mode ?? stage.train.evalMode,
    batchSize: opts.batchSize ?? stage.train.evalBatchSize,
    tasks: served.tasks,
    anyTask: served.anyTask,
  });
  return { manifest, stage, method, engine, dispose: () => method.dispose() };
}
