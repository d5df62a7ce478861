import * as path from 'node:path';
import { encodeJobConfig, JOB_ATTACHMENT, type JobConfig, type StageConfig } from '../config/job-config.js';
import { methodFactory, type PromptMethod } from '../methods/index.js';
import { loadT5Model } from '../model/load-t5.js';
import type { T5Model } from '../model/t5/index.js';
import type { HostTensor, TensorMap } from '../model/tensor-map.js';
import { loadTokenizer, type Tokenizer } from '../model/tokenizer/index.js';
import { ExampleEncoder } from './batching.js';
import {
  encodeHistory,
  evalRecord,
  HISTORY_ATTACHMENT,
  HISTORY_MEDIA_TYPE,
  type HistoryRecord,
  stepRecord,
} from './history.js';
import { type ProgressSink, silentProgress } from './progress.js';
import { loadStageTasks } from './task-source.js';
import { saveTrainedState, type TrainedState } from './trained-state.js';
import { type EvalReport, Trainer, type TrainerOptions } from './trainer.js';

export interface StageResult {
  stage: string;
  method: string;
  best: EvalReport | undefined;
  final: EvalReport | undefined;
  /** The evaluation before the first update (the stage's `evalAtStart`), else absent. */
  initial?: EvalReport;
  tensors: TensorMap;
  ms: number;
  /** Every step and evaluation of the stage (train/history.ts); with `out`, also `<out>/<stage>/history.jsonl`. */
  history: HistoryRecord[];
}

/**
 * Trainer options for a stage's settings. `maxTargetLength` is the job's: evaluation generates as many tokens as
 * a training target may hold (</s> included), so answers are not cut shorter than the model was trained on.
 */
export function trainerOptions(
  stage: StageConfig,
  progress: ProgressSink,
  maxTargetLength: number,
): TrainerOptions {
  const t = stage.train;
  return {
    steps: t.steps,
    batchSize: t.batchSize,
    microBatchSize: t.microBatchSize,
    seed: t.seed,
    ...(t.dropout !== null ? { dropout: t.dropout } : {}),
    mixing: t.mixing,
    optimizer: { lr: t.lr, weightDecay: t.weightDecay, warmupSteps: t.warmupSteps, clipNorm: t.clipNorm },
    evalEvery: t.evalEvery,
    evalAtStart: t.evalAtStart,
    eval: {
      batchSize: t.evalBatchSize,
      maxExamples: t.evalExamples,
      maxNewTokens: maxTargetLength,
      mode: t.evalMode,
    },
    progress,
  };
}

/**
 * Creates a stage's method with the earlier stages' tensors as inputs, or (`restore`) with every tensor taken from
 * a saved state. `maxSourceLength` is the job's (the fixed length the released codes pad inputs to, which
 * ATTEMPT's `poolPadding` and TPT's `maskPadding: false` need).
 */
export function createStageMethod(
  stage: StageConfig,
  model: T5Model,
  inputs: TensorMap,
  maxSourceLength: number,
  restore?: ReadonlyMap<string, HostTensor>,
): PromptMethod {
  const { name, ...options } = stage.method;
  const factory = methodFactory(name);
  return factory.create(factory.parseConfig(options), {
    model,
    tasks: stage.tasks,
    seed: stage.train.seed,
    inputs,
    maxSourceLength,
    ...(restore ? { restore } : {}),
  });
}

/** All tensors of a method (trainable at the given values, and frozen) for saving and for later stages. */
export function methodTensors(method: PromptMethod, params: Map<string, Float32Array>): TensorMap {
  const out: TensorMap = new Map();
  for (const p of method.params) out.set(p.name, { shape: p.variable.shape, data: params.get(p.name)! });
  for (const [k, t] of method.frozen)
    out.set(k, { shape: t.shape, data: (t.dataSync() as Float32Array).slice() });
  return out;
}

/**
 * Runs a job's stages in order in this process (the single-process trainer). Each stage trains its method, keeps
 * the parameters with the best validation average, saves them under OUT/<stage>/ when `out` is given, and hands
 * all its tensors (by name) to the next stage: trained source prompts to ATTEMPT, a TPT bank to its stage 2.
 */
export async function runJob(
  job: JobConfig,
  opts: { out?: string; progress?: ProgressSink; model?: T5Model; tokenizer?: Tokenizer } = {},
): Promise<StageResult[]> {
  const progress = opts.progress ?? silentProgress;
  const tokenizer = opts.tokenizer ?? (await loadTokenizer(job.backbone.tokenizer));
  const model = opts.model ?? loadT5Model(job.backbone.checkpoint).model;
  const encoder = new ExampleEncoder(tokenizer, {
    maxSourceLength: job.maxSourceLength,
    maxTargetLength: job.maxTargetLength,
  });
  const results: StageResult[] = [];
  let inputs: TensorMap = new Map();
  try {
    for (const stage of job.stages) {
      const t0 = performance.now();
      const heldOut = stage.eval.tasks.filter((t) => !stage.tasks.includes(t));
      progress.log(
        `stage '${stage.name}': ${stage.method.name} on ${stage.tasks.join(', ')} for ${stage.train.steps} steps` +
          (heldOut.length > 0 ? `; held-out evaluation on ${heldOut.join(', ')}` : ''),
      );
      const { train: tasks, eval: evalTasks } = loadStageTasks(job.data, stage);
      const method = createStageMethod(stage, model, inputs, job.maxSourceLength);
      try {
        const history: HistoryRecord[] = [];
        const trainer = new Trainer(model, method, encoder, tasks, {
          ...trainerOptions(stage, progress, job.maxTargetLength),
          evalTasks,
          onReport: (r) =>
            history.push(
              'step' in r
                ? stepRecord(stage.name, r.step, r.step.lr)
                : evalRecord(stage.name, r.eval, 'validation'),
            ),
        });
        const r = trainer.run();
        const tensors = methodTensors(method, r.bestParams);
        if (opts.out) {
          const state: TrainedState = {
            manifest: {
              job: job.jobId,
              stage: stage.name,
              method: stage.method.name,
              methodConfig: stage.method,
              tasks: stage.tasks,
              step: r.best?.step ?? stage.train.steps,
              tensors: Object.fromEntries(
                [...tensors].map(([k, t]) => [
                  k,
                  { shape: t.shape, trainable: method.params.some((p) => p.name === k) },
                ]),
              ),
              metrics: r.best
                ? {
                    validationAverage: r.best.average,
                    ...(r.best.heldOut ? { heldOutAverage: r.best.heldOut.average } : {}),
                    ...r.best.scores,
                  }
                : {},
              backbone: { dModel: model.config.dModel, vocabSize: model.config.vocabSize },
              createdAt: new Date().toISOString(),
            },
            tensors,
          };
          saveTrainedState(path.join(opts.out, stage.name), state, {
            [HISTORY_ATTACHMENT]: { data: encodeHistory(history), mediaType: HISTORY_MEDIA_TYPE },
            [JOB_ATTACHMENT]: { data: encodeJobConfig(job), mediaType: 'application/json' },
          });
        }
        results.push({
          stage: stage.name,
          method: stage.method.name,
          best: r.best,
          final: r.evals[r.evals.length - 1],
          ...(r.initial ? { initial: r.initial } : {}),
          tensors,
          ms: performance.now() - t0,
          history,
        });
        inputs = new Map([...inputs, ...tensors]);
      } finally {
        method.dispose();
      }
    }
  } finally {
    if (!opts.model) model.dispose();
  }
  return results;
}
