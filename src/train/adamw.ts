/**
 * AdamW (decoupled weight decay, Loshchilov & Hutter) on plain Float32Arrays, with torch.optim.AdamW's arithmetic:
 *   p <- p * (1 - lr * wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
 *   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * Why in JS rather than tf ops: prompt parameters are small (< a few million floats), the update is then exactly
 * the same sequence of float operations on every worker (replicas stay bit-identical), and the state serialises
 * without touching the backend.
 * A parameter without a gradient this step is skipped entirely (its moments and step count do not move), as
 * PyTorch does for a parameter whose .grad is None: a task absent from a batch leaves its prompt untouched.
 */
export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWOptions = Object.freeze({
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 1e-5,
});

export interface AdamWParamState {
  step: number;
  m: Float32Array;
  v: Float32Array;
}

export class AdamW {
  readonly options: AdamWOptions;
  private readonly state = new Map<string, AdamWParamState>();

  constructor(options: Partial<AdamWOptions> = {}) {
    this.options = { ...DEFAULT_ADAMW, ...options };
  }

  /** Updates `value` in place with gradient `grad` at learning rate `lr`. */
  update(name: string, value: Float32Array, grad: Float32Array, lr: number): void {
    if (grad.length !== value.length) {
      throw new Error(
        `AdamW: gradient of '${name}' has ${grad.length} values but the parameter has ${value.length}`,
      );
    }
    let s = this.state.get(name);
    if (!s) {
      s = { step: 0, m: new Float32Array(value.length), v: new Float32Array(value.length) };
      this.state.set(name, s);
    }
    const { beta1, beta2, eps, weightDecay } = this.options;
    s.step += 1;
    const bc1 = 1 - beta1 ** s.step;
    const bc2 = 1 - beta2 ** s.step;
    const stepSize = lr / bc1;
    const bc2Sqrt = Math.sqrt(bc2);
    const decay = 1 - lr * weightDecay;
    const { m, v } = s;
    for (let i = 0; i < value.length; i++) {
      const g = grad[i]!;
      value[i] = value[i]! * decay;
      m[i] = beta1 * m[i]! + (1 - beta1) * g;
      v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
      value[i] = value[i]! - (stepSize * m[i]!) / (Math.sqrt(v[i]!) / bc2Sqrt + eps);
    }
  }

  /** Moments and step counts by parameter name (for checkpoints). */
  snapshot(): Map<string, AdamWParamState> {
    return new Map(
      [...this.state].map(([k, s]) => [
        k,
        { step: s.step, m: Float32Array.from(s.m), v: Float32Array.from(s.v) },
      ]),
    );
  }

  restore(state: ReadonlyMap<string, AdamWParamState>): void {
    this.state.clear();
    for (const [k, s] of state)
      this.state.set(k, { step: s.step, m: Float32Array.from(s.m), v: Float32Array.from(s.v) });
  }
}
