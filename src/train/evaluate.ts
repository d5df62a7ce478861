import * as tf from '@tensorflow/tfjs-core';
import { type ScoringSpec, scoreTask, type TaskScores } from '../data/metrics/index.js';
import type { PromptMethod } from '../methods/index.js';
import type { T5Model } from '../model/t5/index.js';
import { disposeBatch, type ExampleEncoder, makeBatch } from './batching.js';

export interface EvalTask {
  name: string;
  spec: ScoringSpec;
  examples: readonly { source: string; target: string; answers?: string[]; group?: string }[];
}

/**
 * How a task with label words (classification, STS-B's score grid) is predicted:
 * - 'generate': greedy decoding, the decoded string is the prediction; one that is not a label counts as wrong
 *   (invalid). What the released ATTEMPT and TPT do (`predict_with_generate`, then string matching), so their
 *   tables are comparable with it. The default.
 * - 'rank': every label string is scored and the most likely is the prediction, so it is always a label.
 * Tasks without label words (SQuAD, ReCoRD) are generated in both modes.
 */
export type EvalMode = 'generate' | 'rank';
export const EVAL_MODES: readonly EvalMode[] = ['generate', 'rank'];
export const DEFAULT_EVAL_MODE: EvalMode = 'generate';

export interface EvalOptions {
  batchSize: number;
  /** Evaluate at most this many examples per task (0 = all). */
  maxExamples: number;
  /** Max generated tokens (</s> counted): the job's maxTargetLength. */
  maxNewTokens: number;
  mode: EvalMode;
  split: string;
  /**
   * Called after each batch with the examples predicted so far and the task's total: a distributed worker's proof
   * of life while it evaluates (the coordinator declares a member whose main thread makes no progress hung).
   */
  onBatch?: (done: number, total: number) => void;
}

/** Predictions (see EvalMode) then the task's metrics. */
export function evaluateTask(
  model: T5Model,
  method: PromptMethod,
  encoder: ExampleEncoder,
  task: EvalTask,
  opts: EvalOptions,
): TaskScores & { predictions: string[] } {
  const examples = opts.maxExamples > 0 ? task.examples.slice(0, opts.maxExamples) : task.examples;
  const tok = encoder.tokenizer;
  const labels = task.spec.labels;
  const candidates = opts.mode === 'rank' ? labels?.map((l) => tok.encode(l)) : undefined;
  const predictions: string[] = [];
  for (let start = 0; start < examples.length; start += opts.batchSize) {
    const chunk = examples.slice(start, start + opts.batchSize);
    const encoded = chunk.map((e, i) =>
      encoder.encode(`${task.name}/${opts.split}/${start + i}`, task.name, e.source, e.target),
    );
    const batch = makeBatch(encoded, tok.padId);
    try {
      const enc = method.encoderInputs(model, batch);
      try {
        if (candidates && labels) {
          const scores = model.scoreCandidates(enc.inputsEmbeds, enc.attentionMask, candidates);
          for (const row of scores) predictions.push(labels[row.indexOf(Math.max(...row))]!);
        } else {
          for (const ids of model.greedyDecode(enc.inputsEmbeds, enc.attentionMask, opts.maxNewTokens)) {
            predictions.push(tok.decode(ids).trim());
          }
        }
      } finally {
        tf.dispose([enc.inputsEmbeds, enc.attentionMask]);
      }
    } finally {
      disposeBatch(batch);
    }
    opts.onBatch?.(predictions.length, examples.length);
  }
  return { ...scoreTask(task.spec, predictions, examples), predictions };
}
