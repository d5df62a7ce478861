import type { PromptMethod } from '../methods/index.js';
import type { TensorMap } from '../model/tensor-map.js';
import type { AdamWParamState } from '../train/adamw.js';
import { type PromptOptimizer, parameterChecksum } from '../train/prompt-optimizer.js';

export type { TensorMap };

/** A replica's training state after `step` updates: what a bank version stores and recovery restores. */
export interface ReplicaSnapshot {
  step: number;
  params: Map<string, Float32Array>;
  adam: Map<string, AdamWParamState>;
}

function snapshot(opt: PromptOptimizer): ReplicaSnapshot {
  return { step: opt.step, params: opt.parameters(), adam: opt.adamState() };
}

/** Where a generation's state came from (ReplicaState.sync). */
export type SyncSource = 'live' | 'committed' | 'bank' | 'fresh';

/**
 * A replica's state as one object, as Horovod's elastic `State`: the live optimizer (parameters, moments, step)
 * and the last committed snapshot. `commit()` when the coordinator may rely on the current step (before a step
 * starts: it plans step s only after committing s-1); `restore()` to roll back an update applied for a step that
 * was never committed; `sync()` when a generation starts.
 */
export class ReplicaState {
  private committed: ReplicaSnapshot;
  /** The state before any update (the method as created): what a fresh start restores. */
  private readonly initial: ReplicaSnapshot;

  constructor(
    private readonly method: PromptMethod,
    readonly optimizer: PromptOptimizer,
  ) {
    this.committed = snapshot(optimizer);
    this.initial = this.committed;
  }

  /** The parameters before any update (the method as created: the same on every replica). */
  get initialParams(): ReadonlyMap<string, Float32Array> {
    return this.initial.params;
  }

  /** Updates applied to the live state. */
  get step(): number {
    return this.optimizer.step;
  }

  commit(): void {
    this.committed = snapshot(this.optimizer);
  }

  restore(): void {
    this.optimizer.restore(this.committed);
  }

  /** The state after `step` updates, when this replica holds it (live or committed). */
  at(step: number): ReplicaSnapshot | undefined {
    if (this.optimizer.step === step) return snapshot(this.optimizer);
    return this.committed.step === step ? this.committed : undefined;
  }

  /** Steps and parameter checksums of the states held (JoinRequest.holds): the live one, then the committed one. */
  held(): { step: number; checksum: string }[] {
    const states = [{ step: this.optimizer.step, checksum: this.optimizer.checksum() }];
    if (this.committed.step !== this.optimizer.step)
      states.push({
        step: this.committed.step,
        checksum: parameterChecksum(this.method, this.committed.params),
      });
    return states;
  }

  /**
   * Brings the replica to the state after `step` updates for a new generation (the recovery protocol's step 4,
   * worker side), and commits it:
   * 1. When memory is `trusted` (the coordinator says so: a survivor, or a re-joined worker whose checksum it
   *    checked): the live state when it is at `step` (and `liveTrusted`), else the committed snapshot when it is at
   *    `step` and the live one at most one update further (the update of the step in flight is rolled back).
   * 2. Else the bank version, when the generation names one (`fromBank`).
   * 3. Else the state before any update (the method as created).
   * Then the state must be at `step`: anything else is an error naming both steps.
   */
  async sync(
    step: number,
    opts: {
      trusted: boolean;
      liveTrusted: boolean;
      fromBank?: () => Promise<ReplicaSnapshot>;
      what: string;
    },
  ): Promise<SyncSource> {
    let source: SyncSource;
    if (opts.trusted && opts.liveTrusted && this.optimizer.step === step) {
      source = 'live';
    } else if (opts.trusted && this.committed.step === step && this.optimizer.step >= step - 1) {
      this.restore();
      source = 'committed';
    } else if (opts.fromBank) {
      this.optimizer.restore(await opts.fromBank());
      source = 'bank';
    } else {
      this.optimizer.restore(this.initial);
      source = 'fresh';
    }
    if (this.optimizer.step !== step) {
      throw new Error(
        `${opts.what} starts at step ${step} but the restored state is at step ${this.optimizer.step}`,
      );
    }
    this.commit();
    return source;
  }
}

const M = 'optim.m/';
const V = 'optim.v/';

/** Flattens a replica state (plus the method's frozen tensors) into named tensors for a bank version. */
export function stateTensors(
  method: PromptMethod,
  state: ReplicaSnapshot,
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
): ReplicaSnapshot {
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
