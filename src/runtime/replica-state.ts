import type { PromptMethod } from '../methods/index.js';
import type { AdamWParamState } from '../train/adamw.js';
import type { PromptOptimizer } from '../train/prompt-optimizer.js';

export type TensorMap = Map<string, { shape: number[]; data: Float32Array }>;

/** A replica's training state after `step` committed updates: what a bank version stores and recovery restores. */
export interface ReplicaState {
  step: number;
  params: Map<string, Float32Array>;
  adam: Map<string, AdamWParamState>;
}

export function snapshot(opt: PromptOptimizer): ReplicaState {
  return { step: opt.step, params: opt.parameters(), adam: opt.adamState() };
}

const M = 'optim.m/';
const V = 'optim.v/';

/** Flattens a replica state (plus the method's frozen tensors) into named tensors for a bank version. */
export function stateTensors(
  method: PromptMethod,
  state: ReplicaState,
): { tensors: TensorMap; adamSteps: Record<string, number> } {
  const tensors: TensorMap = new Map();
  const adamSteps: Record<string, number> = {};
  for (const p of method.params) {
    const shape = p.variable.shape;
    tensors.set(p.name, { shape, data: state.params.get(p.name)! });
    const a = state.adam.get(p.name);
    if (a) {
      tensors.set(`${M}${p.name}`, { shape, data: a.m });
      tensors.set(`${V}${p.name}`, { shape, data: a.v });
      adamSteps[p.name] = a.step;
    }
  }
  for (const [k, t] of method.frozen)
    tensors.set(k, { shape: t.shape, data: (t.dataSync() as Float32Array).slice() });
  return { tensors, adamSteps };
}

/** The inverse of stateTensors; a tensor missing for a parameter is an error naming it. */
export function stateFromTensors(
  method: PromptMethod,
  tensors: TensorMap,
  step: number,
  adamSteps: Record<string, number>,
  source: string,
): ReplicaState {
  const params = new Map<string, Float32Array>();
  const adam = new Map<string, AdamWParamState>();
  for (const p of method.params) {
    const t = tensors.get(p.name);
    if (!t) throw new Error(`${source}: no tensor for parameter '${p.name}'`);
    if (t.shape.join(',') !== p.variable.shape.join(',')) {
      throw new Error(
        `${source}: '${p.name}' has shape [${t.shape.join(', ')}], the method expects [${p.variable.shape.join(', ')}]`,
      );
    }
    params.set(p.name, t.data.slice());
    const m = tensors.get(`${M}${p.name}`);
    const v = tensors.get(`${V}${p.name}`);
    if (m && v) adam.set(p.name, { step: adamSteps[p.name] ?? step, m: m.data.slice(), v: v.data.slice() });
  }
  return { step, params, adam };
}
