import { ConfigReader } from '../config-fields.js';

export interface PromptTuningConfig {
  /** Prompt length n (100 in the papers). */
  promptLength: number;
  /** 'vocab': rows of frequent token embeddings (Lester et al.); 'uniform': U(-0.5, 0.5). */
  init: 'vocab' | 'uniform';
  /**
   * SPoT-style transfer: initialise from this input tensor (a trained source prompt, by name in the stage inputs).
   * Overrides `init`.
   */
  initFrom?: string;
  /** One prompt per task (true) or one prompt shared by all tasks (false, the multi-task baseline). */
  perTask: boolean;
}

export function parsePromptTuningConfig(raw: Readonly<Record<string, unknown>>): PromptTuningConfig {
  const r = new ConfigReader('prompt-tuning', raw);
  const initFrom = r.optionalString('initFrom');
  const cfg: PromptTuningConfig = {
    promptLength: r.int('promptLength', 100, 1),
    init: r.oneOf('init', ['vocab', 'uniform'] as const, 'vocab'),
    perTask: r.bool('perTask', false),
    ...(initFrom !== undefined ? { initFrom } : {}),
  };
  r.done();
  return cfg;
}
