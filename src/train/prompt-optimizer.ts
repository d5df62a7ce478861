import * as tf from '@tensorflow/tfjs-core';
import type { ParamGroup, PromptMethod } from '../methods/index.js';
import { AdamW, type AdamWOptions, type AdamWParamState } from './adamw.js';
import { clipGlobalNorm } from './clip.js';
import { linearWarmupDecay } from './schedule.js';

export interface OptimizerConfig {
  /** Base learning rate per parameter group; groups not listed use `prompt`'s. */
  lr: Partial<Record<ParamGroup, number>> & { prompt: number };
  weightDecay: number;
  warmupSteps: number;
  totalSteps: number;
  /** Global gradient-norm clip; 0 disables. */
  clipNorm: number;
  adam?: Partial<Omit<AdamWOptions, 'weightDecay'>>;
}

export interface UpdateReport {
  gradNorm: number;
  /** Learning rate multiplier of this update (the schedule). */
  scale: number;
  /** The learning rate each parameter group present in the method was updated with (base rate x scale). */
  lr: Partial<Record<ParamGroup, number>>;
}

/**
 * Applies averaged gradients to a method's parameters: clip by global norm, scheduled per-group learning rates,
 * AdamW. Keeps a float32 mirror of every parameter so an update is pure JS arithmetic and a single upload.
 */
export class PromptOptimizer {
  private readonly adam: AdamW;
  private readonly values = new Map<string, Float32Array>();
  private updates = 0;

  constructor(
    private readonly method: PromptMethod,
    readonly config: OptimizerConfig,
  ) {
    this.adam = new AdamW({ ...config.adam, weightDecay: config.weightDecay });
    for (const p of method.params) this.values.set(p.name, (p.variable.dataSync() as Float32Array).slice());
  }

  /** Number of updates applied so far (the schedule position). */
  get step(): number {
    return this.updates;
  }

  /** grads: parameter name -> gradient of the MEAN loss (already divided by the global token count). */
  apply(grads: Map<string, Float32Array>): UpdateReport {
    const gradNorm = clipGlobalNorm(grads.values(), this.config.clipNorm);
    const scale = linearWarmupDecay(this.updates, this.config.warmupSteps, this.config.totalSteps);
    const rates: Partial<Record<ParamGroup, number>> = {};
    for (const p of this.method.params)
      rates[p.group] = (this.config.lr[p.group] ?? this.config.lr.prompt) * scale;
    for (const p of this.method.params) {
      const g = grads.get(p.name);
      if (!g) continue;
      const value = this.values.get(p.name)!;
      const lr = rates[p.group]!;
      this.adam.update(p.name, value, g, lr);
      tf.tidy(() => p.variable.assign(tf.tensor(value, p.variable.shape)));
    }
    this.updates += 1;
    return { gradNorm, scale, lr: rates };
  }

  /** Current parameter values (a copy). */
  parameters(): Map<string, Float32Array> {
    return new Map([...this.values].map(([k, v]) => [k, v.slice()]));
  }

  /** Replaces parameters, moments and schedule position (for resume and recovery). */
  restore(state: {
    params: ReadonlyMap<string, Float32Array>;
    adam: ReadonlyMap<string, AdamWParamState>;
    step: number;
  }) {
    for (const p of this.method.params) {
      const v = state.params.get(p.name);
      if (!v) throw new Error(`restore: no value for parameter '${p.name}'`);
      if (v.length !== p.variable.size) {
        throw new Error(
          `restore: '${p.name}' has ${v.length} values, expected ${p.variable.size} [${p.variable.shape}]`,
        );
      }
      this.values.set(p.name, v.slice());
      tf.tidy(() => p.variable.assign(tf.tensor(v, p.variable.shape)));
    }
    this.adam.restore(state.adam);
    this.updates = state.step;
  }

  /**
   * Runs `fn` with the method's variables set to `params` (an evaluation of other parameters, e.g. the untrained
   * ones), then sets them back to this optimizer's values. Its values, moments and step are never touched, so the
   * training that follows is bit for bit the same.
   */
  withParameters<T>(params: ReadonlyMap<string, Float32Array>, fn: () => T): T {
    const set = (values: ReadonlyMap<string, Float32Array>) => {
      for (const p of this.method.params) {
        const v = values.get(p.name);
        if (!v || v.length !== p.variable.size)
          throw new Error(`withParameters: no ${p.variable.size} values for parameter '${p.name}'`);
        tf.tidy(() => p.variable.assign(tf.tensor(v, p.variable.shape)));
      }
    };
    try {
      set(params);
      return fn();
    } finally {
      set(this.values);
    }
  }

  adamState(): Map<string, AdamWParamState> {
    return this.adam.snapshot();
  }

  /**
   * An order-independent-free, exact fingerprint of the parameters: FNV-1a over the float32 bytes in parameter
   * order. Replicas that applied identical updates report identical checksums.
   */
  checksum(): string {
    return parameterChecksum(this.method, this.values);
  }
}

/** PromptOptimizer.checksum of any set of parameter values (a saved snapshot), in the method's parameter order. */
export function parameterChecksum(
  method: Pick<PromptMethod, 'params'>,
  values: ReadonlyMap<string, Float32Array>,
): string {
  let h = 0x811c9dc5;
  for (const p of method.params) {
    const v = values.get(p.name)!;
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    for (let i = 0; i < bytes.length; i++) {
      h ^= bytes[i]!;
      h = Math.imul(h, 0x01000193);
    }
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}
