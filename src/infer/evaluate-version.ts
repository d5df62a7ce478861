/**
 * Evaluates a bank version the way its training stage did: the stage's evaluation tasks (held-out ones included),
 * its evaluation settings (examples per task, batch size, generate or rank) and the trainer's own evaluation code,
 * so the numbers are the ones the stage recorded in the version's metrics.
 */
import type { JobConfig, StageConfig } from '../config/job-config.js';
import type { PromptMethod } from '../methods/index.js';
import type { T5Model } from '../model/t5/index.js';
import type { ExampleEncoder } from '../train/batching.js';
import type { EvalMode } from '../train/evaluate.js';
import { silentProgress } from '../train/progress.js';
import { trainerOptions } from '../train/run-job.js';
import { loadStageTasks } from '../train/task-source.js';
import { type EvalReport, Trainer } from '../train/trainer.js';

export type EvalSplit = 'validation' | 'test';
export const EVAL_SPLITS: readonly EvalSplit[] = ['validation', 'test'];

export interface EvaluateVersionOptions {
  split: EvalSplit;
  /** Only these tasks (default: the stage's evaluation tasks). */
  tasks?: readonly string[];
  /** Override the stage's evalExamples (0 = all). */
  maxExamples?: number;
  mode?: EvalMode;
  batchSize?: number;
}

export class EvalSplitError extends Error {
  override name = 'EvalSplitError';
}

/** The stage's evaluation report for `method` at `step` (the version's step). */
export function evaluateVersion(
  job: JobConfig,
  stage: StageConfig,
  model: T5Model,
  method: PromptMethod,
  encoder: ExampleEncoder,
  step: number,
  opts: EvaluateVersionOptions,
): EvalReport {
  const evalStage = opts.tasks ? { ...stage, eval: { tasks: [...opts.tasks] } } : stage;
  const { train, eval: evalTasks } = loadStageTasks(job.data, evalStage);
  const scored = evalTasks.map((t) => {
    if (opts.split === 'validation') return t;
    if (!t.test || t.test.length === 0)
      throw new EvalSplitError(`task '${t.name}' has no labelled ${opts.split} split`);
    // The trainer scores a task's `validation` examples: hand it the test split in their place.
    return { ...t, validation: t.test };
  });
  const base = trainerOptions(stage, silentProgress, job.maxTargetLength);
  const trainer = new Trainer(model, method, encoder, train, {
    ...base,
    eval: {
      ...base.eval,
      ...(opts.maxExamples !== undefined ? { maxExamples: opts.maxExamples } : {}),
      ...(opts.mode !== undefined ? { mode: opts.mode } : {}),
      ...(opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {}),
    },
    evalTasks: scored,
  });
  return trainer.evaluate(step);
}

/** The metrics a version records for an evaluation report (what the workers commit with a stage's final version). */
export function reportMetrics(r: EvalReport): Record<string, number> {
  return {
    validationAverage: r.average,
    ...(r.heldOut ? { heldOutAverage: r.heldOut.average } : {}),
    ...r.scores,
  };
}
