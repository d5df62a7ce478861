/**
 * The multi-task mixture sampler: which (task, example) pairs make up global batch `step`, as a pure function of
 * (tasks, options, seed, step).
 *
 * How step s is computed without replaying steps 0..s-1:
 * 1. Each task i owns an arrival process on a continuous time axis: its k-th example arrives at
 *        t_i(k) = (k + u_i(k)) / p_i,   u_i(k) = hash(seed, task, k) in [0, 1),
 *    so exactly one arrival of task i falls in each interval [k/p_i, (k+1)/p_i): task i gets a p_i share of
 *    every stretch of the stream (stratified, so small tasks are not starved by chance), in a random order.
 * 2. The global stream is all arrivals sorted by (time, task). Global batch s is stream positions
 *    [s·B, (s+1)·B).
 * 3. The number of task-i arrivals before time t has a closed form (floor(t·p_i) give or take one, settled by
 *    evaluating t_i near it), so bisection on t finds, in O(tasks · log(s·B)), how many examples of each task the
 *    first s·B positions hold; the batch is then merged from there.
 * 4. Task i's k-th draw is example perm_{i,e}[k mod n_i] with e = floor(k / n_i): a fresh seeded permutation per
 *    task epoch, so sampling is without replacement within a task's epoch.
 * The cursor therefore only needs (seed, step) plus the mixture's identity; it also carries the per-task
 * counts consumed, which are recomputed and compared on restore to catch a changed dataset.
 */
import { CursorMismatchError } from './errors.js';
import { DEFAULT_MIXING, mixtureProbabilities } from './mixture-probabilities.js';
import { hash32, hashToUnit, permutation, rngFor } from './rng.js';

export interface MixtureTask {
  name: string;
  /** Number of training examples. */
  size: number;
}

export interface MixtureSamplerOptions {
  /** Global batch size B (examples per step across all workers). */
  batchSize: number;
  seed: number;
  /** Size cap K (T5); default no cap. */
  cap?: number;
  /** Temperature T; default 1 (examples-proportional). */
  temperature?: number;
}

/** One sampled example: the task and the index of the example within that task's training set. */
export interface SampledExample {
  task: string;
  /** Position of the task in the sampler's task list. */
  taskIndex: number;
  index: number;
  /** The task epoch this draw belongs to (0-based). */
  epoch: number;
}

/** Everything needed to resume; plain JSON. */
export interface MixtureCursor {
  version: 1;
  seed: number;
  /** The next step `next()` returns. */
  step: number;
  batchSize: number;
  /** null = no cap (JSON has no Infinity). */
  cap: number | null;
  temperature: number;
  tasks: MixtureTask[];
  /** Examples drawn per task before `step` (checked on restore). */
  consumed: number[];
}

export class MixtureSampler {
  readonly tasks: readonly MixtureTask[];
  readonly probabilities: readonly number[];
  readonly batchSize: number;
  readonly seed: number;
  readonly cap: number;
  readonly temperature: number;
  private nextStep = 0;
  private readonly salts: number[];
  private readonly perms = new Map<string, Uint32Array>();

  constructor(tasks: readonly MixtureTask[], options: MixtureSamplerOptions) {
    if (tasks.length === 0) throw new RangeError('a mixture needs at least one task');
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new RangeError(`batchSize must be a positive integer, got ${options.batchSize}`);
    }
    if (!Number.isInteger(options.seed)) throw new RangeError(`seed must be an integer, got ${options.seed}`);
    const names = new Set<string>();
    for (const t of tasks) {
      if (names.has(t.name)) throw new RangeError(`task '${t.name}' appears twice in the mixture`);
      names.add(t.name);
    }
    this.tasks = tasks.map((t) => ({ name: t.name, size: t.size }));
    this.batchSize = options.batchSize;
    this.seed = options.seed;
    this.cap = options.cap ?? DEFAULT_MIXING.cap;
    this.temperature = options.temperature ?? DEFAULT_MIXING.temperature;
    this.probabilities = mixtureProbabilities(
      tasks.map((t) => t.size),
      { cap: this.cap, temperature: this.temperature },
    );
    this.salts = tasks.map((t) => hash32('mixture-task', t.name));
  }

  /** Rebuilds a sampler from a cursor; throws CursorMismatchError if the tasks or options differ. */
  static fromCursor(tasks: readonly MixtureTask[], cursor: MixtureCursor): MixtureSampler {
    if (cursor.version !== 1) throw new CursorMismatchError('version', '1', String(cursor.version));
    const want = JSON.stringify(tasks.map((t) => [t.name, t.size]));
    const got = JSON.stringify(cursor.tasks.map((t) => [t.name, t.size]));
    if (want !== got) throw new CursorMismatchError('tasks', want, got);
    const s = new MixtureSampler(tasks, {
      batchSize: cursor.batchSize,
      seed: cursor.seed,
      cap: cursor.cap ?? Number.POSITIVE_INFINITY,
      temperature: cursor.temperature,
    });
    const consumed = s.consumedBefore(cursor.step);
    if (JSON.stringify(consumed) !== JSON.stringify(cursor.consumed)) {
      throw new CursorMismatchError('consumed', JSON.stringify(consumed), JSON.stringify(cursor.consumed));
    }
    s.nextStep = cursor.step;
    return s;
  }

  /** The step `next()` will return. */
  get step(): number {
    return this.nextStep;
  }

  /** Returns the batch of the current step and advances. */
  next(): SampledExample[] {
    const b = this.globalBatch(this.nextStep);
    this.nextStep++;
    return b;
  }

  /** Moves the cursor to `step` (no work is replayed). */
  seek(step: number): void {
    this.checkStep(step);
    this.nextStep = step;
  }

  cursor(): MixtureCursor {
    return {
      version: 1,
      seed: this.seed,
      step: this.nextStep,
      batchSize: this.batchSize,
      cap: Number.isFinite(this.cap) ? this.cap : null,
      temperature: this.temperature,
      tasks: this.tasks.map((t) => ({ ...t })),
      consumed: this.consumedBefore(this.nextStep),
    };
  }

  /** Examples drawn per task in steps 0..step-1. */
  consumedBefore(step: number): number[] {
    this.checkStep(step);
    return this.prefixCounts(step * this.batchSize);
  }

  /** The examples of global batch `step`, in stream order; a pure function of (tasks, options, seed, step). */
  globalBatch(step: number): SampledExample[] {
    this.checkStep(step);
    const counts = this.prefixCounts(step * this.batchSize);
    const next = counts.map((k, i) => this.arrival(i, k));
    const out: SampledExample[] = [];
    for (let b = 0; b < this.batchSize; b++) {
      let best = -1;
      for (let i = 0; i < next.length; i++) {
        if (best < 0 || (next[i] as number) < (next[best] as number)) best = i;
      }
      const k = counts[best] as number;
      out.push(this.draw(best, k));
      counts[best] = k + 1;
      next[best] = this.arrival(best, k + 1);
    }
    return out;
  }

  private checkStep(step: number): void {
    if (!Number.isSafeInteger(step) || step < 0)
      throw new RangeError(`step must be a non-negative integer, got ${step}`);
  }

  /** Arrival time of task i's k-th example; Infinity for a task with zero rate. */
  private arrival(i: number, k: number): number {
    const p = this.probabilities[i] as number;
    if (p === 0) return Number.POSITIVE_INFINITY;
    return (k + hashToUnit(this.seed, this.salts[i] as number, k)) / p;
  }

  /** Number of task i's arrivals strictly before time t. */
  private countBefore(i: number, t: number): number {
    const p = this.probabilities[i] as number;
    if (p === 0) return 0;
    // Every k < floor(t·p) - 1 arrives before (k + 1)/p <= t - 1/p: start just below and walk up.
    let k = Math.max(0, Math.floor(t * p) - 2);
    while (this.arrival(i, k) < t) k++;
    return k;
  }

  private countAll(t: number): number {
    let n = 0;
    for (let i = 0; i < this.tasks.length; i++) n += this.countBefore(i, t);
    return n;
  }

  /** Per-task counts among the first g stream positions. */
  private prefixCounts(g: number): number[] {
    const T = this.tasks.length;
    if (g === 0) return new Array<number>(T).fill(0);
    let lo = 0;
    let hi = g + 2 * T + 2;
    while (this.countAll(hi) <= g) hi *= 2;
    // Invariant: countAll(lo) <= g < countAll(hi). Narrow until few arrivals remain between them.
    for (let iter = 0; iter < 200 && this.countAll(hi) - this.countAll(lo) > 4 * T + 8; iter++) {
      const mid = (lo + hi) / 2;
      if (mid === lo || mid === hi) break;
      if (this.countAll(mid) <= g) lo = mid;
      else hi = mid;
    }
    const counts: number[] = [];
    const pending: { t: number; i: number }[] = [];
    for (let i = 0; i < T; i++) {
      const a = this.countBefore(i, lo);
      const b = this.countBefore(i, hi);
      counts.push(a);
      for (let k = a; k < b; k++) pending.push({ t: this.arrival(i, k), i });
    }
    pending.sort((x, y) => x.t - y.t || x.i - y.i);
    let missing = g - counts.reduce((x, y) => x + y, 0);
    for (const p of pending) {
      if (missing === 0) break;
      counts[p.i] = (counts[p.i] as number) + 1;
      missing--;
    }
    return counts;
  }

  private draw(i: number, k: number): SampledExample {
    const task = this.tasks[i] as MixtureTask;
    const epoch = Math.floor(k / task.size);
    const perm = this.permutationOf(i, epoch);
    return { task: task.name, taskIndex: i, index: perm[k % task.size] as number, epoch };
  }

  private permutationOf(i: number, epoch: number): Uint32Array {
    const key = `${i}:${epoch}`;
    let p = this.perms.get(key);
    if (!p) {
      p = permutation(
        rngFor(this.seed, 'epoch', this.salts[i] as number, epoch),
        (this.tasks[i] as MixtureTask).size,
      );
      // A batch touches at most two epochs of a task; keep a few per task and drop the oldest.
      if (this.perms.size >= 3 * this.tasks.length) {
        const oldest = this.perms.keys().next().value as string;
        this.perms.delete(oldest);
      }
      this.perms.set(key, p);
    }
    return p;
  }
}
