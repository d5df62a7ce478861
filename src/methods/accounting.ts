import type { MethodDims, ParamSpec } from './method.js';

export interface ParameterReport {
  method: string;
  tensors: (ParamSpec & { count: number })[];
  /** Trainable parameters counted per task: its own tensors plus an equal share of the shared ones. */
  perTask: number;
  /** Trainable parameters of the whole method. */
  total: number;
  /** Frozen parameters the method carries (source prompts, a shared bank). */
  frozen: number;
  /** total / backbone parameters x 100, when the backbone size is known. */
  percentOfBackbone?: number;
}

/**
 * The trainable-parameter accounting of the papers: ATTEMPT-m over t tasks reports (sum of target prompts +
 * shared attention module) / t per task, which is what `perTask` computes.
 */
export function parameterReport(
  method: string,
  specs: readonly ParamSpec[],
  dims: MethodDims,
  backboneParams?: number,
): ParameterReport {
  const tensors = specs.map((s) => ({ ...s, count: s.shape.reduce((a, b) => a * b, 1) }));
  const total = tensors.filter((t) => t.trainable).reduce((a, t) => a + t.count, 0);
  const frozen = tensors.filter((t) => !t.trainable).reduce((a, t) => a + t.count, 0);
  const perTask = dims.tasks.length > 0 ? total / dims.tasks.length : total;
  return {
    method,
    tensors,
    perTask,
    total,
    frozen,
    ...(backboneParams ? { percentOfBackbone: (100 * total) / backboneParams } : {}),
  };
}
