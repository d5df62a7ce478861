import * as tf from '@tensorflow/tfjs-core';
import type { T5Model } from '../../model/t5/index.js';
import { gatherRows } from '../gather-rows.js';
import type {
  EncoderInputs,
  MethodContext,
  MethodDims,
  MethodFactory,
  ParamSpec,
  PromptBatch,
} from '../method.js';
import { MethodBase, readStageInput } from '../method-base.js';
import {
  prependPrompt,
  taskIndices,
  tidyInputs,
  tokenEmbeddings,
  uniformInit,
  vocabInit,
} from '../prompt-ops.js';
import { type PromptTuningConfig, parsePromptTuningConfig } from './config.js';

function promptName(config: PromptTuningConfig, task: string | undefined): string {
  return config.perTask ? `prompt.${task}` : 'prompt';
}

function describe(config: PromptTuningConfig, dims: MethodDims): ParamSpec[] {
  const shape = [config.promptLength, dims.dModel];
  if (!config.perTask) return [{ name: 'prompt', shape, group: 'prompt', trainable: true }];
  return dims.tasks.map((task) => ({
    name: promptName(config, task),
    shape,
    group: 'prompt',
    trainable: true,
    task,
  }));
}

/**
 * Prompt tuning (Lester et al. 2021): a trainable P in R^{n x d} prepended to the encoder input embeddings,
 * [P ; E(x)], with the mask extended by n ones.
 */
class PromptTuning extends MethodBase {
  readonly name = 'prompt-tuning';

  constructor(
    readonly config: PromptTuningConfig,
    tasks: readonly string[],
    ctx: MethodContext,
  ) {
    super(tasks);
    const d = ctx.model.config.dModel;
    const specs = describe(config, { dModel: d, vocabSize: ctx.model.config.vocabSize, tasks });
    this.materialize(specs, (spec) => this.initialValue(spec, ctx), ctx.restore);
  }

  encoderInputs(model: T5Model, batch: PromptBatch): EncoderInputs {
    return tidyInputs(() => {
      const embeds = tokenEmbeddings(model, batch);
      const B = embeds.shape[0];
      let prompt: tf.Tensor3D;
      if (this.config.perTask) {
        const [n, d] = this.params[0]!.variable.shape as [number, number];
        const stacked = tf.reshape(tf.stack(this.params.map((p) => p.variable)), [this.params.length, n * d]);
        const idx = tf.tensor1d(taskIndices(this.tasks, batch.tasks, this.name), 'int32');
        prompt = tf.reshape(gatherRows(stacked as tf.Tensor2D, idx), [B, n, d]) as tf.Tensor3D;
      } else {
        const p = this.params[0]!.variable;
        prompt = tf.tile(tf.expandDims(p, 0), [B, 1, 1]) as tf.Tensor3D;
      }
      return prependPrompt(prompt, embeds, batch.attentionMask);
    });
  }

  private initialValue(spec: ParamSpec, ctx: MethodContext): Float32Array {
    const size = spec.shape[0]! * spec.shape[1]!;
    if (this.config.initFrom !== undefined) {
      return readStageInput(this.name, ctx.inputs, 'initFrom', this.config.initFrom, {
        shape: spec.shape,
        target: `'${spec.name}'`,
      });
    }
    return this.config.init === 'vocab'
      ? vocabInit(ctx.model, spec.shape[0]!, ctx.seed, spec.name)
      : uniformInit(size, 0.5, ctx.seed, spec.name);
  }
}

export const promptTuning: MethodFactory<PromptTuningConfig> = {
  name: 'prompt-tuning',
  summary: 'Lester et al. 2021: one trainable soft prompt (shared, or one per task) before the input',
  parseConfig: parsePromptTuningConfig,
  describe,
  create: (config, ctx) => new PromptTuning(config, ctx.tasks, ctx),
  servesUnseenTasks: (config) => !config.perTask,
  fixedTaskPrompt: (names, task) =>
    names.includes(`prompt.${task}`) ? `prompt.${task}` : names.includes('prompt') ? 'prompt' : undefined,
  // The released prompt-tuning baseline (ATTEMPT's configs/baselines/prompt_tuning.json) sets weight_decay 1e-5.
  trainDefaults: { weightDecay: 1e-5 },
  quickConfig: (flags) => ({
    perTask: flags.tasks.length > 1,
    ...(flags.promptLength !== undefined ? { promptLength: flags.promptLength } : {}),
  }),
};
