/**
 * Batch inference with a trained method on the frozen backbone. A batch may mix tasks freely: the method builds
 * each row's prompt from the row's own task (prompt tuning: the task's prompt; ATTEMPT: the row's own mixture of
 * source prompts; TPT/SPT: rows retrieved for the row's own input), and the whole batch runs as one encoder pass
 * and one decode.
 */
import * as tf from '@tensorflow/tfjs-core';
import { getTask, resolveTaskName } from '../data/tasks/registry.js';
import type { PromptMethod } from '../methods/index.js';
import type { T5Model } from '../model/t5/index.js';
import { disposeBatch, ExampleEncoder, makeBatch, type TextEncoder } from '../train/batching.js';
import type { EvalMode } from '../train/evaluate.js';

/** One row to predict: the task whose prompt applies and the source text as the model sees it. */
export interface PredictInput {
  task: string;
  source: string;
}

export interface PredictEngineOptions {
  /** The job's limits: sources are truncated to maxSourceLength, at most maxTargetLength tokens are generated. */
  maxSourceLength: number;
  maxTargetLength: number;
  /** 'generate': greedy decoding; 'rank': the most likely label word (tasks without labels are generated). */
  mode: EvalMode;
  /** Rows per forward pass. */
  batchSize: number;
  /** Tasks the method serves (see servableTasks); `anyTask`: also any registered task. */
  tasks: readonly string[];
  anyTask?: boolean;
}

/** A row names a task the served method has no prompt for. */
export class UnservedTaskError extends Error {
  override name = 'UnservedTaskError';
  constructor(
    readonly task: string,
    readonly served: readonly string[],
  ) {
    super(`task '${task}' is not served by this version; it serves ${served.join(', ')}`);
  }
}

export class PredictEngine {
  private readonly served: Set<string>;

  constructor(
    readonly model: T5Model,
    readonly tokenizer: TextEncoder,
    readonly method: PromptMethod,
    readonly options: PredictEngineOptions,
  ) {
    this.served = new Set(options.tasks);
  }

  /** The canonical task name, or UnservedTaskError. */
  checkTask(task: string): string {
    if (this.served.has(task)) return task;
    const canonical = resolveTaskName(task);
    if (canonical !== undefined && (this.served.has(canonical) || this.options.anyTask)) return canonical;
    throw new UnservedTaskError(task, this.options.tasks);
  }

  /**
   * Predictions in input order, `batchSize` rows per forward pass; `onBatch` after each with the rows done.
   *
   * Rows are run grouped by task and, within a task, by source length (then restored to input order): a pass
   * then pads to similar lengths and decodes only as long as its own task's answers need, so a file that mixes
   * tasks runs as fast as the same rows sorted by task. A row's prediction does not depend on the rows it shares a
   * pass with (the methods' padding options are exact; `test/cli/eval-predict.test.ts`), so grouping changes
   * speed only. `predictBatch` runs a pass as given (what `serve` does with concurrent requests).
   */
  predict(inputs: readonly PredictInput[], onBatch?: (done: number) => void): string[] {
    const tasks = inputs.map((r) => this.checkTask(r.task));
    const order = inputs
      .map((_, i) => i)
      .sort(
        (a, b) =>
          (tasks[a]! < tasks[b]! ? -1 : tasks[a]! > tasks[b]! ? 1 : 0) ||
          inputs[a]!.source.length - inputs[b]!.source.length ||
          a - b,
      );
    const out = new Array<string>(inputs.length);
    for (let i = 0; i < order.length; i += this.options.batchSize) {
      const idx = order.slice(i, i + this.options.batchSize);
      const preds = this.predictBatch(idx.map((k) => inputs[k]!));
      idx.forEach((k, j) => {
        out[k] = preds[j]!;
      });
      onBatch?.(Math.min(order.length, i + this.options.batchSize));
    }
    return out;
  }

  /**
   * One forward pass over `inputs` (any mix of tasks). In 'rank' mode the rows of label tasks are scored against
   * the union of their tasks' label words in one pass, and each row takes the best of its own task's labels (a
   * candidate's score does not depend on the others scored with it); the other rows are generated.
   */
  predictBatch(inputs: readonly PredictInput[]): string[] {
    if (inputs.length === 0) return [];
    const tasks = inputs.map((r) => this.checkTask(r.task));
    const out = new Array<string>(inputs.length);
    const ranked: number[] = [];
    const generated: number[] = [];
    tasks.forEach((t, i) => {
      (this.options.mode === 'rank' && getTask(t).labels ? ranked : generated).push(i);
    });
    if (ranked.length > 0) {
      const words: string[] = [];
      for (const i of ranked)
        for (const l of getTask(tasks[i]!).labels ?? []) if (!words.includes(l)) words.push(l);
      const candidates = words.map((w) => this.tokenizer.encode(w));
      const scores = this.run(
        ranked.map((i) => ({ task: tasks[i]!, source: inputs[i]!.source })),
        (enc, mask) => this.model.scoreCandidates(enc, mask, candidates),
      );
      ranked.forEach((i, r) => {
        const labels = getTask(tasks[i]!).labels!;
        const row = scores[r]!;
        let best = labels[0]!;
        let bestScore = Number.NEGATIVE_INFINITY;
        for (const l of labels) {
          const s = row[words.indexOf(l)]!;
          if (s > bestScore) {
            bestScore = s;
            best = l;
          }
        }
        out[i] = best;
      });
    }
    if (generated.length > 0) {
      const ids = this.run(
        generated.map((i) => ({ task: tasks[i]!, source: inputs[i]!.source })),
        (enc, mask) => this.model.greedyDecode(enc, mask, this.options.maxTargetLength),
      );
      generated.forEach((i, r) => {
        out[i] = this.tokenizer.decode(ids[r]!).trim();
      });
    }
    return out;
  }

  private run<T>(rows: readonly PredictInput[], f: (enc: tf.Tensor3D, mask: tf.Tensor2D) => T): T {
    // A fresh encoder per pass: ExampleEncoder caches by key, which a server must not do for every request.
    const encoder = new ExampleEncoder(this.tokenizer, {
      maxSourceLength: this.options.maxSourceLength,
      maxTargetLength: this.options.maxTargetLength,
    });
    const batch = makeBatch(
      rows.map((r, i) => encoder.encode(`${r.task}/predict/${i}`, r.task, r.source, '')),
      this.tokenizer.padId,
    );
    try {
      const enc = this.method.encoderInputs(this.model, batch);
      try {
        return f(enc.inputsEmbeds, enc.attentionMask);
      } finally {
        tf.dispose([enc.inputsEmbeds, enc.attentionMask]);
      }
    } finally {
      disposeBatch(batch);
    }
  }
}
