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

export interface EvalOptions {
  batchSize: number;
  /** Evaluate at most this many examples per task (0 = all). */
  maxExamples: number;
  /** Max generated tokens for tasks without a label set. */
  maxNewTokens: number;
  split: string;
}

/**
 * Predictions then the task's metrics. Classification tasks (with label words) are predicted by scoring every
 * label string and taking the most likely (so a prediction is always a valid label); others by greedy decoding.
 */
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
  const candidates = labels?.map((l) => tok.encode(l));
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
  }
  return { ...scoreTask(task.spec, predictions, examples), predictions };
}
