import { ConfigReader } from '../config-fields.js';
import { MethodConfigError } from '../method.js';

export type TptStage = 'bank' | 'target';
export type TptSelector = 'maxPooling' | 'avgPooling' | 'softTopK';

export interface TptConfig {
  /** N: rows of the token bank (600 in the paper). */
  bankSize: number;
  /** k: bank rows retrieved per example (100). */
  topK: number;
  /** n_s: length of the task prompt (100). Unused in stage 'bank', which has no task prompt. */
  taskPromptLength: number;
  /**
   * 'bank' (stage 1): only the bank trains, over mixed source-task batches, encoder input [P_ret ; E]: the
   * released construct_bank_over_multi_tasks trains the bank alone, without task prompts.
   * 'target' (stage 2): one task prompt per task trains, encoder input [P_ret ; P_task ; E].
   */
  stage: TptStage;
  /** Stage 'target' only: each task fine-tunes its own copy of the bank (the released code) instead of sharing it frozen. */
  tuneBank: boolean;
  /** How the query is formed and the retrieved rows are combined; see the TPT class comment for formulas. */
  selector: TptSelector;
  /** softTopK only: softmax temperature applied after the optional standardisation. */
  softTopKTemperature: number;
  /** softTopK only: standardise the k retrieved scores per example before the softmax (scale-free weights). */
  softTopKStandardize: boolean;
  /**
   * Initialisation of a bank not read from `bankFrom`: 'vocab' = frozen embedding rows of N distinct ids drawn
   * from [100, 1000) (the released code); 'uniform' = U(-0.5, 0.5). Unset: 'vocab' in stage 'bank'; in stage
   * 'target' unset means the bank must come from `bankFrom` (see `resolveBankSource`).
   */
  bankInit?: 'vocab' | 'uniform';
  /** Name of the stage input tensor [N, d] holding a trained bank (a stage-1 result). Overrides `bankInit`. */
  bankFrom?: string;
  /**
   * Task prompt initialisation: 'frequent' = embedding rows of distinct ids from [100, 600) (the released
   * code's "frequent" init); 'vocab' = Lester et al.'s 5000 most frequent ids; 'uniform' = U(-0.5, 0.5).
   */
  promptInit: 'frequent' | 'vocab' | 'uniform';
  /**
   * Stage 'target': start task prompts from trained prompts in the stage inputs instead of `promptInit` (the
   * released scripts' `--prompt_path`: MRPC and RTE start from MNLI's prompt-tuning prompt). A name applies to every
   * task; `{task: name}` to the tasks listed (the others use `promptInit`). Each must be [taskPromptLength, d].
   */
  promptFrom?: string | Record<string, string>;
  /**
   * true (default): pads are masked out of the query's pooling and of the encoder. false reproduces the released
   * code, which pads every input to a fixed length (max_length 256) and passes no attention mask: each input is
   * padded with the pad token to the job's maxSourceLength, and the pooling and the encoder (so the loss and the
   * generated answers) see those pads. It depends on the example alone, never on the batch, and costs an encoder
   * over maxSourceLength positions for every example.
   */
  maskPadding: boolean;
}

export function parseTptConfig(raw: Readonly<Record<string, unknown>>): TptConfig {
  const r = new ConfigReader('tpt', raw);
  const bankFrom = r.optionalString('bankFrom');
  const promptFrom = r.optionalStringMap('promptFrom');
  const bankInitRead = r.oneOf('bankInit', ['vocab', 'uniform'] as const, 'vocab');
  const bankInit = 'bankInit' in raw ? bankInitRead : undefined;
  const cfg: TptConfig = {
    bankSize: r.int('bankSize', 600, 1),
    topK: r.int('topK', 100, 1),
    taskPromptLength: r.int('taskPromptLength', 100, 1),
    stage: r.oneOf('stage', ['bank', 'target'] as const, 'target'),
    tuneBank: r.bool('tuneBank', false),
    selector: r.oneOf('selector', ['maxPooling', 'avgPooling', 'softTopK'] as const, 'maxPooling'),
    softTopKTemperature: r.number('softTopKTemperature', 1, 0),
    softTopKStandardize: r.bool('softTopKStandardize', true),
    promptInit: r.oneOf('promptInit', ['frequent', 'vocab', 'uniform'] as const, 'frequent'),
    maskPadding: r.bool('maskPadding', true),
    ...(bankFrom !== undefined ? { bankFrom } : {}),
    ...(bankInit !== undefined ? { bankInit } : {}),
    ...(promptFrom !== undefined ? { promptFrom } : {}),
  };
  r.done();
  if (cfg.topK > cfg.bankSize) {
    throw new MethodConfigError(
      'tpt',
      'topK',
      `${cfg.topK} rows cannot be retrieved from a bank of ${cfg.bankSize}`,
    );
  }
  if (cfg.softTopKTemperature <= 0) {
    throw new MethodConfigError('tpt', 'softTopKTemperature', `must be > 0, got ${cfg.softTopKTemperature}`);
  }
  if (cfg.promptFrom === '') {
    throw new MethodConfigError(
      'tpt',
      'promptFrom',
      'is empty; give the input tensor name of a trained prompt',
    );
  }
  if (cfg.stage === 'bank' && cfg.promptFrom !== undefined) {
    throw new MethodConfigError(
      'tpt',
      'promptFrom',
      "applies to stage 'target' only (stage 'bank' has no task prompt)",
    );
  }
  if (cfg.stage === 'bank' && cfg.tuneBank) {
    throw new MethodConfigError(
      'tpt',
      'tuneBank',
      "applies to stage 'target' only (in stage 'bank' the bank is what trains)",
    );
  }
  return cfg;
}

/**
 * Where the bank's initial values come from. Stage 2 retrieves from a stage-1 bank: forgetting to pass it must
 * not silently train against a fresh bank, so an unset `bankInit` there requires `bankFrom`; setting `bankInit`
 * explicitly is the deliberate "no stage 1" ablation.
 */
export function resolveBankSource(cfg: TptConfig): { from: string } | { init: 'vocab' | 'uniform' } {
  if (cfg.bankFrom !== undefined) return { from: cfg.bankFrom };
  if (cfg.bankInit !== undefined) return { init: cfg.bankInit };
  if (cfg.stage === 'bank') return { init: 'vocab' };
  throw new MethodConfigError(
    'tpt',
    'bankFrom',
    "stage 'target' needs the stage-1 bank: name its input tensor in bankFrom " +
      '(or set bankInit explicitly to start from a fresh bank)',
  );
}
