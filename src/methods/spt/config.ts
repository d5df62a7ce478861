import { ConfigReader } from '../config-fields.js';
import { MethodConfigError } from '../method.js';

export interface SptConfig {
  /** m: memory slots (16). */
  memorySlots: number;
  /**
   * l: tokens per memory prompt (20). Ours: short enough that [P_mem ; P] stays near prompt tuning's length
   * (120 rows with n = 100) while a retrieved slot still carries several tokens of task-family information.
   */
  memoryLength: number;
  /** k: slots retrieved per example (4). */
  topK: number;
  /** tau: temperature of the cosine scores (0.1): cosines lie in [-1, 1], so tau sets how peaked w is. */
  tau: number;
  /** n: parametric prompt length (100). */
  promptLength: number;
  /** One parametric prompt shared by all tasks (true: what makes zero-shot on unseen tasks possible) or one per task. */
  sharedPrompt: boolean;
  /** 'vocab': frozen embedding rows of frequent ids (keys then live where the queries z, mean input embeddings, live); 'uniform': U(-0.5, 0.5). */
  keyInit: 'vocab' | 'uniform';
  /** 'vocab': frozen embedding rows of frequent ids (as prompt tuning); 'uniform': U(-0.5, 0.5). */
  memoryInit: 'vocab' | 'uniform';
  promptInit: 'vocab' | 'uniform';
  /** Input tensors (by name) holding trained memory [m, l, d], keys [m, d], prompt [n, d]: fine-tuning after the multi-task stage. */
  memoryFrom?: string;
  keysFrom?: string;
  /** Initialises every parametric prompt (shared or per task) from one trained prompt. */
  promptFrom?: string;
  /** Keep memory and keys frozen (fine-tune only the parametric prompt on a new task). */
  freezeMemory: boolean;
  /**
   * How slots and keys that top-k does not pick learn. 'dense' (default, ours): the encoder sees the top-k
   * mixture, and the backward pass is that of the softmax mixture over all m slots (straight-through), so every
   * slot and key gets gradient in proportion to its weight. 'topk': the exact gradient of the top-k mixture;
   * slots and keys outside every example's top k get exactly zero, so a slot no query ranks in its top k never
   * moves (and its key never rises to be picked).
   */
  retrievalGradient: 'dense' | 'topk';
}

export function parseSptConfig(raw: Readonly<Record<string, unknown>>): SptConfig {
  const r = new ConfigReader('spt', raw);
  const memoryFrom = r.optionalString('memoryFrom');
  const keysFrom = r.optionalString('keysFrom');
  const promptFrom = r.optionalString('promptFrom');
  const cfg: SptConfig = {
    memorySlots: r.int('memorySlots', 16, 1),
    memoryLength: r.int('memoryLength', 20, 1),
    topK: r.int('topK', 4, 1),
    tau: r.number('tau', 0.1, 0),
    promptLength: r.int('promptLength', 100, 1),
    sharedPrompt: r.bool('sharedPrompt', true),
    keyInit: r.oneOf('keyInit', ['vocab', 'uniform'] as const, 'vocab'),
    memoryInit: r.oneOf('memoryInit', ['vocab', 'uniform'] as const, 'vocab'),
    promptInit: r.oneOf('promptInit', ['vocab', 'uniform'] as const, 'vocab'),
    freezeMemory: r.bool('freezeMemory', false),
    retrievalGradient: r.oneOf('retrievalGradient', ['dense', 'topk'] as const, 'dense'),
    ...(memoryFrom !== undefined ? { memoryFrom } : {}),
    ...(keysFrom !== undefined ? { keysFrom } : {}),
    ...(promptFrom !== undefined ? { promptFrom } : {}),
  };
  r.done();
  if (cfg.topK > cfg.memorySlots) {
    throw new MethodConfigError(
      'spt',
      'topK',
      `${cfg.topK} slots cannot be retrieved from ${cfg.memorySlots} memory slots`,
    );
  }
  if (cfg.tau <= 0) throw new MethodConfigError('spt', 'tau', `must be > 0, got ${cfg.tau}`);
  return cfg;
}
