/**
 * Runs one bench job (bench/methods-jobs.ts) like runJob, stage after stage with each stage's tensors handed to
 * the next, and scores every measured stage on the TEST split of its eval tasks before it trains (the untrained
 * method) and after (the parameters of the best validation step). For ATTEMPT it also reads the attention each
 * test example puts on every candidate prompt, through the method's own `inspect` (what `promptmesh method run`
 * prints as "weights").
 */
import * as tf from '@tensorflow/tfjs-core';
import type { StageConfig } from '../src/config/job-config.js';
import type { PromptMethod } from '../src/methods/index.js';
import type { T5Model } from '../src/model/t5/index.js';
import type { TensorMap } from '../src/model/tensor-map.js';
import type { Tokenizer } from '../src/model/tokenizer/index.js';
import { disposeBatch, ExampleEncoder, makeBatch } from '../src/train/batching.js';
import { type EvalMode, evaluateTask } from '../src/train/evaluate.js';
import type { ProgressSink } from '../src/train/progress.js';
import { createStageMethod, methodTensors, trainerOptions } from '../src/train/run-job.js';
import { loadStageTasks } from '../src/train/task-source.js';
import { Trainer, type TrainTask } from '../src/train/trainer.js';
import type { BenchRun, RunKey } from './methods-jobs.js';

/** ATTEMPT's mean attention over a task's test examples: one weight per candidate (sources, then the target). */
export interface AttentionReadout {
  candidates: string[];
  weights: number[];
}

/** One method, one seed: per task (every eval task of a measured stage) its test scores. */
export interface RunResult {
  method: RunKey;
  seed: number;
  untrained: Record<string, number>;
  trained: Record<string, number>;
  /** Test predictions that were not a label string (0 under label scoring), untrained and trained. */
  invalidUntrained: Record<string, number>;
  invalidTrained: Record<string, number>;
  /** Tasks a measured stage evaluated without training on them (held-out, zero-shot). */
  heldOut: string[];
  /** The trained method's first five test predictions per task. */
  samples: Record<string, string[]>;
  /** Per measured stage: its best validation step and average (over the tasks it trains on). */
  validation: Record<string, { step: number; average: number }>;
  /** ATTEMPT only: per task, its mean attention over the test examples. */
  attention?: Record<string, AttentionReadout>;
  /** Wall time of each stage's training (evaluations included), seconds; a stage reused from an identical earlier
   * one (same config and seed: the source prompts ATTEMPT and ATTEMPT-m share) counts its first run's time. */
  stageSeconds: Record<string, number>;
  reusedStages: string[];
  trainSeconds: number;
}

/** Trained tensors of unmeasured stages by their config, so identical source stages train once per seed. */
export type StageCache = Map<string, { tensors: TensorMap; seconds: number }>;

export interface RunOptions {
  /** Test examples scored per task (0: the whole test split). */
  testExamples: number;
  progress: ProgressSink;
  cache: StageCache;
}

interface TestScores {
  scores: Record<string, number>;
  invalid: Record<string, number>;
  samples: Record<string, string[]>;
}

function testScores(
  model: T5Model,
  method: PromptMethod,
  encoder: ExampleEncoder,
  tasks: readonly TrainTask[],
  mode: EvalMode,
  maxNewTokens: number,
  maxExamples: number,
): TestScores {
  const out: TestScores = { scores: {}, invalid: {}, samples: {} };
  for (const t of tasks) {
    const r = evaluateTask(
      model,
      method,
      encoder,
      { name: t.name, spec: t.spec, examples: t.test ?? [] },
      { batchSize: 50, maxExamples, maxNewTokens, mode, split: 'test' },
    );
    out.scores[t.name] = r.score;
    out.invalid[t.name] = r.invalid;
    out.samples[t.name] = r.predictions.slice(0, 5);
  }
  return out;
}

/**
 * The mean over a task's test examples of the weights the method's `inspect` reports per example (ATTEMPT: the
 * softmax over its candidate prompts); undefined for a method that reports none.
 */
export function meanInspectedWeights(
  model: T5Model,
  method: PromptMethod,
  encoder: ExampleEncoder,
  task: TrainTask,
  maxExamples: number,
): number[] | undefined {
  if (!method.inspect) return undefined;
  const all = task.test ?? [];
  const examples = maxExamples > 0 ? all.slice(0, maxExamples) : all;
  let sum: number[] | undefined;
  for (let start = 0; start < examples.length; start += 50) {
    const chunk = examples.slice(start, start + 50);
    const encoded = chunk.map((e, i) =>
      encoder.encode(`${task.name}/test/${start + i}`, task.name, e.source, e.target),
    );
    const batch = makeBatch(encoded, encoder.tokenizer.padId);
    try {
      const rows = method.inspect(model, batch).weights;
      if (!rows) return undefined;
      for (const row of rows) {
        sum ??= new Array<number>(row.length).fill(0);
        row.forEach((w, j) => {
          sum![j]! += w;
        });
      }
    } finally {
      disposeBatch(batch);
    }
  }
  return sum?.map((s) => s / examples.length);
}

/** ATTEMPT's candidates in the order its weights come: the source prompts (by task), then the target prompt. */
function attemptCandidates(stage: StageConfig): string[] {
  const m = stage.method as { sources?: string[]; includeTarget?: boolean };
  const sources = (m.sources ?? []).map((s) => s.replace(/^prompt\./, ''));
  return m.includeTarget === false ? sources : [...sources, 'target'];
}

export function runBenchJob(
  run: BenchRun,
  model: T5Model,
  tokenizer: Tokenizer,
  opts: RunOptions,
): RunResult {
  const { job } = run;
  const encoder = new ExampleEncoder(tokenizer, {
    maxSourceLength: job.maxSourceLength,
    maxTargetLength: job.maxTargetLength,
  });
  const result: RunResult = {
    method: run.key,
    seed: run.seed,
    untrained: {},
    trained: {},
    invalidUntrained: {},
    invalidTrained: {},
    heldOut: [],
    samples: {},
    validation: {},
    stageSeconds: {},
    reusedStages: [],
    trainSeconds: 0,
  };
  let inputs: TensorMap = new Map();
  for (const stage of job.stages) {
    const measured = run.measured.has(stage.name);
    const cacheKey = JSON.stringify(stage);
    const cached = measured ? undefined : opts.cache.get(cacheKey);
    if (cached) {
      opts.progress.log(`${run.key} seed ${run.seed}: stage '${stage.name}' reused (same config and seed)`);
      inputs = new Map([...inputs, ...cached.tensors]);
      result.stageSeconds[stage.name] = cached.seconds;
      result.reusedStages.push(stage.name);
      continue;
    }
    const { train: tasks, eval: evalTasks } = loadStageTasks(job.data, stage);
    const method = createStageMethod(stage, model, inputs, job.maxSourceLength);
    try {
      const mode = stage.train.evalMode;
      const score = () =>
        testScores(model, method, encoder, evalTasks, mode, job.maxTargetLength, opts.testExamples);
      const untrained = measured ? score() : undefined;
      opts.progress.log(
        `${run.key} seed ${run.seed}: stage '${stage.name}' (${stage.method.name}) on ${stage.tasks.join(', ')}`,
      );
      const t0 = performance.now();
      const r = new Trainer(model, method, encoder, tasks, {
        ...trainerOptions(stage, opts.progress, job.maxTargetLength),
        evalTasks,
      }).run();
      result.stageSeconds[stage.name] = (performance.now() - t0) / 1000;
      // Score (and hand on) the validation-selected parameters, not the last step's.
      for (const p of method.params) {
        const best = r.bestParams.get(p.name)!;
        tf.tidy(() => p.variable.assign(tf.tensor(best, p.variable.shape, 'float32')));
      }
      if (measured) {
        const trained = score();
        Object.assign(result.untrained, untrained!.scores);
        Object.assign(result.invalidUntrained, untrained!.invalid);
        Object.assign(result.trained, trained.scores);
        Object.assign(result.invalidTrained, trained.invalid);
        Object.assign(result.samples, trained.samples);
        result.heldOut.push(...stage.eval.tasks.filter((t) => !stage.tasks.includes(t)));
        if (r.best) result.validation[stage.name] = { step: r.best.step, average: r.best.average };
        if (stage.method.name === 'attempt') {
          const candidates = attemptCandidates(stage);
          for (const t of evalTasks) {
            const weights = meanInspectedWeights(model, method, encoder, t, opts.testExamples);
            if (!weights) continue;
            if (weights.length !== candidates.length) {
              throw new Error(
                `internal: ATTEMPT reported ${weights.length} weights for ${candidates.length} candidates`,
              );
            }
            result.attention ??= {};
            result.attention[t.name] = { candidates, weights };
          }
        }
      } else {
        const tensors = methodTensors(method, r.bestParams);
        opts.cache.set(cacheKey, { tensors, seconds: result.stageSeconds[stage.name]! });
        inputs = new Map([...inputs, ...tensors]);
      }
    } finally {
      method.dispose();
    }
  }
  result.trainSeconds = Object.values(result.stageSeconds).reduce((a, b) => a + b, 0);
  return result;
}
