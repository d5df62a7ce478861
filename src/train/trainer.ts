import type { ScoringSpec } from '../data/metrics/index.js';
import { MixtureSampler } from '../data/mixture-sampler.js';
import type { PromptMethod } from '../methods/index.js';
import type { T5Model } from '../model/t5/index.js';
import { disposeBatch, type EncodedExample, type ExampleEncoder, makeBatch } from './batching.js';
import { dropoutPlan } from './dropout-plan.js';
import { type EvalOptions, evaluateTask } from './evaluate.js';
import {
  addGradientSums,
  denseSums,
  type GradientSums,
  gradientSums,
  sumOf,
  type TaskLoss,
} from './gradients.js';
import { formatProgressLine, type ProgressSink, silentProgress } from './progress.js';
import { type OptimizerConfig, PromptOptimizer } from './prompt-optimizer.js';
import { type GradientReducer, identityReducer, type SubtreeSums } from './reducer.js';
import { cutUnits, type StepPlan, type UnitExample } from './step-plan.js';
import { ownedSubtrees, treeSum } from './unit-tree.js';

/** A task as the trainer sees it: text examples plus how to score them. */
export interface TrainTask {
  name: string;
  spec: ScoringSpec;
  train: readonly { source: string; target: string }[];
  validation: readonly { source: string; target: string; answers?: string[]; group?: string }[];
  test?: readonly { source: string; target: string; answers?: string[]; group?: string }[];
}

export interface TrainerOptions {
  steps: number;
  /** Global batch size (examples per update). */
  batchSize: number;
  /** Examples per forward/backward; the global batch is accumulated from micro-batches. */
  microBatchSize: number;
  seed: number;
  /**
   * Dropout rate of the frozen backbone while training (dropout-plan.ts); absent: the checkpoint's `dropout_rate`.
   * Evaluation never drops.
   */
  dropout?: number;
  mixing: { cap?: number; temperature?: number };
  optimizer: Omit<OptimizerConfig, 'totalSteps'>;
  /** Evaluate on validation every N steps (0 = only at the end). */
  evalEvery: number;
  /**
   * Also evaluate before the first update when the run starts at step 0 (the untrained prompt): reported (onReport,
   * `TrainResult.initial`), never picked as the best.
   */
  evalAtStart?: boolean;
  eval: Omit<EvalOptions, 'split'>;
  /**
   * Tasks scored at each evaluation, in order (default: the training tasks). One that is not a training task is
   * held out: its score is reported (and averaged in `heldOutAverage`) but picks the best parameters only when
   * no training task is evaluated.
   */
  evalTasks?: readonly TrainTask[];
  progress?: ProgressSink;
  /** Called after every step and every evaluation, as they happen (the run history, train/history.ts). */
  onReport?: (r: { step: StepReport } | { eval: EvalReport }) => void;
}

export interface StepReport {
  step: number;
  loss: number;
  tokens: number;
  examples: number;
  perTaskLoss: Record<string, number>;
  /** Loss sum, tokens and examples per task of the units this rank computed. */
  perTask: Record<string, TaskLoss>;
  gradNorm: number;
  /** Learning rate per parameter group this update used. */
  lr: Record<string, number>;
  ms: number;
}

export interface EvalReport {
  step: number;
  /** Score of every evaluated task, held-out ones included. */
  scores: Record<string, number>;
  metrics: Record<string, Record<string, number>>;
  /**
   * Per task, predictions that were not a label (or, for a score task, not a number) and so counted as wrong: with
   * `evalMode: 'generate'` it says how much of a low score is the prompt not yet producing the label words.
   */
  invalid: Record<string, number>;
  /** Per task, how many examples were evaluated. */
  evaluated: Record<string, number>;
  /** Mean score of the evaluated training tasks (of the held-out ones when no training task is evaluated). */
  average: number;
  /** Held-out (zero-shot) tasks evaluated and their mean score; absent when every evaluated task was trained on. */
  heldOut?: { tasks: string[]; average: number };
}

/** `task score` per task, with `(n/m not a label)` where generation produced strings outside the label set. */
export function formatEvalScores(r: Pick<EvalReport, 'scores' | 'invalid' | 'evaluated'>): string {
  return Object.entries(r.scores)
    .map(([t, s]) => {
      const bad = r.invalid[t] ?? 0;
      return `${t} ${s.toFixed(1)}${bad > 0 ? ` (${bad}/${r.evaluated[t]} not a label)` : ''}`;
    })
    .join(', ');
}

export interface TrainResult {
  steps: StepReport[];
  evals: EvalReport[];
  best: EvalReport | undefined;
  /** The evaluation before the first update (options.evalAtStart), not among `evals` nor a candidate for `best`. */
  initial?: EvalReport;
  /** Parameters at the best validation average (or the last step when no evaluation ran). */
  bestParams: Map<string, Float32Array>;
}

/**
 * The trainer: step s trains on the mixture's global batch s, cut into fixed units (step-plan.ts); gradients of the
 * summed token loss of each unit are added along the unit tree (unit-tree.ts), divided by the global token count
 * (the mean token loss of the whole batch, as a single big batch would give), clipped, and applied with AdamW. The
 * same `step` runs in one process (identity reducer) and in every worker of a job (the collective's reducer), so
 * both give the same bits. It never looks at the method's name: everything method-specific is behind PromptMethod.
 */
export class Trainer {
  readonly sampler: MixtureSampler;
  readonly optimizer: PromptOptimizer;
  /** The dropout rate training applies: the option, else the checkpoint's. */
  readonly dropout: number;
  private readonly byName: Map<string, TrainTask>;

  constructor(
    readonly model: T5Model,
    readonly method: PromptMethod,
    readonly encoder: ExampleEncoder,
    readonly tasks: readonly TrainTask[],
    readonly options: TrainerOptions,
  ) {
    this.byName = new Map(tasks.map((t) => [t.name, t]));
    this.dropout = options.dropout ?? model.config.dropoutRate;
    if (!(this.dropout >= 0 && this.dropout < 1)) {
      throw new RangeError(`dropout must be in [0, 1), got ${this.dropout}`);
    }
    this.sampler = new MixtureSampler(
      tasks.map((t) => ({ name: t.name, size: t.train.length })),
      {
        batchSize: options.batchSize,
        seed: options.seed,
        ...(options.mixing.cap !== undefined ? { cap: options.mixing.cap } : {}),
        ...(options.mixing.temperature !== undefined ? { temperature: options.mixing.temperature } : {}),
      },
    );
    this.optimizer = new PromptOptimizer(method, { ...options.optimizer, totalSteps: options.steps });
  }

  /** Tokenized examples (of a global batch, or a unit of one). */
  encodeBatch(examples: readonly UnitExample[]): EncodedExample[] {
    return examples.map((s) => {
      const ex = this.byName.get(s.task)!.train[s.index]!;
      return this.encoder.encode(`${s.task}/train/${s.index}`, s.task, ex.source, ex.target);
    });
  }

  /**
   * Gradient sums over any list of examples of global batch `step`, in micro-batches added in order (not the
   * step's unit tree: for tests and measurements of the gradient itself). The step keys the dropout masks (with the
   * seed and each example's identity), never the micro-batch or the position in the list.
   */
  gradientSums(examples: readonly EncodedExample[], step: number): GradientSums {
    const acc: GradientSums = { grads: new Map(), nllSum: 0, tokens: 0, perTask: new Map() };
    for (let i = 0; i < examples.length; i += this.options.microBatchSize) {
      const micro = examples.slice(i, i + this.options.microBatchSize);
      const batch = makeBatch(micro, this.encoder.tokenizer.padId);
      const dropout = dropoutPlan(this.dropout, this.options.seed, step, micro);
      try {
        addGradientSums(acc, gradientSums(this.model, this.method, batch, dropout));
      } finally {
        disposeBatch(batch);
      }
    }
    return acc;
  }

  /**
   * The single-process plan of global batch `step`: every unit on rank 0. A coordinator plans the same units and
   * touched parameters and spreads the units over its members (runtime/coordinator/step-planner.ts).
   */
  plan(step: number): StepPlan {
    const units = cutUnits(
      this.sampler.globalBatch(step).map((b) => ({ task: b.task, index: b.index })),
      this.options.microBatchSize,
    );
    return {
      step,
      units,
      owners: units.map(() => 0),
      touched: this.touched(units.flat().map((e) => e.task)),
    };
  }

  /** The method's parameters a batch with these tasks touches, in the method's parameter order. */
  touched(tasks: readonly string[]): string[] {
    const touched = new Set(this.method.touchedParams([...new Set(tasks)]));
    return this.method.params.filter((p) => touched.has(p.name)).map((p) => p.name);
  }

  /** One forward/backward: the sums of one unit of `plan`, dense over the plan's touched parameters. */
  unitSums(plan: StepPlan, unit: number): GradientSums {
    const examples = this.encodeBatch(plan.units[unit]!);
    const batch = makeBatch(examples, this.encoder.tokenizer.padId);
    try {
      const sums = gradientSums(
        this.model,
        this.method,
        batch,
        dropoutPlan(this.dropout, this.options.seed, plan.step, examples),
      );
      return denseSums(sums, plan.touched, (name) => this.sizeOf(name));
    } finally {
      disposeBatch(batch);
    }
  }

  /** Element count of a parameter. */
  sizeOf(name: string): number {
    const p = this.method.params.find((x) => x.name === name);
    if (!p)
      throw new Error(
        `the plan names parameter '${name}', which this ${this.method.name} method does not have`,
      );
    return p.variable.size;
  }

  /** The sums of every maximal subtree of `plan`'s unit tree that `rank` owns (unit-tree.ts). */
  ownedSums(plan: StepPlan, rank: number): SubtreeSums[] {
    return ownedSubtrees(plan.owners)
      .filter((t) => t.owner === rank)
      .map((t) => ({
        lo: t.lo,
        hi: t.hi,
        sums: treeSum(t.lo, t.hi, (u) => this.unitSums(plan, u), sumOf),
      }));
  }

  /**
   * One update (the step protocol's compute half, identical at every world size; runtime/worker/worker.ts runs
   * it for a coordinator's plan):
   * 1. Forward/backward of the units this rank owns, added along the unit tree into its subtrees' sums.
   * 2. The reducer turns them into the whole batch's sums (identity in a single process, the collective in a job).
   * 3. Divide by the global token count and apply clip + AdamW: identical sums give identical replicas.
   * The report's tokens, examples and per-task losses are this rank's; `loss` is the global batch's.
   */
  async step(
    plan: StepPlan,
    reducer: GradientReducer,
    rank = 0,
    onPhase: (phase: 'forward-backward' | 'reduce' | 'update') => void = () => {},
  ): Promise<StepReport & { timings: { forwardBackward: number; reduce: number; optimizer: number } }> {
    const t0 = performance.now();
    onPhase('forward-backward');
    const owned = this.ownedSums(plan, rank);
    const t1 = performance.now();
    onPhase('reduce');
    const total = await reducer.reduce(owned, plan);
    const t2 = performance.now();
    onPhase('update');
    const report = this.applySums(plan, total, owned);
    const t3 = performance.now();
    return {
      ...report,
      ms: t3 - t0,
      timings: { forwardBackward: t1 - t0, reduce: t2 - t1, optimizer: t3 - t2 },
    };
  }

  /** Step 3 of `step`: the update from the whole batch's sums. */
  private applySums(plan: StepPlan, total: GradientSums, owned: readonly SubtreeSums[]): StepReport {
    const tokens = Math.max(1, total.tokens);
    const grads = new Map<string, Float32Array>();
    for (const name of plan.touched) {
      const g = total.grads.get(name)!.slice();
      for (let i = 0; i < g.length; i++) g[i] = g[i]! / tokens;
      grads.set(name, g);
    }
    const { gradNorm, lr } = this.optimizer.apply(grads);
    const perTaskLoss: Record<string, number> = {};
    const perTask = new Map<string, TaskLoss>();
    let localTokens = 0;
    let examples = 0;
    for (const o of owned) {
      localTokens += o.sums.tokens;
      for (const [t, l] of o.sums.perTask) {
        const e = perTask.get(t) ?? { nllSum: 0, tokens: 0, examples: 0 };
        e.nllSum += l.nllSum;
        e.tokens += l.tokens;
        e.examples += l.examples;
        examples += l.examples;
        perTask.set(t, e);
      }
    }
    for (const [t, l] of perTask) perTaskLoss[t] = l.nllSum / Math.max(1, l.tokens);
    return {
      step: plan.step,
      loss: total.nllSum / tokens,
      tokens: localTokens,
      examples,
      perTaskLoss,
      perTask: Object.fromEntries(perTask),
      gradNorm,
      lr: lr as Record<string, number>,
      ms: 0,
    };
  }

  /** One update on global batch `step` in this process (the identity reducer: `step` without awaiting). */
  trainStep(step: number): StepReport {
    const t0 = performance.now();
    const plan = this.plan(step);
    const owned = this.ownedSums(plan, 0);
    const report = this.applySums(plan, identityReducer.reduce(owned, plan), owned);
    return { ...report, ms: performance.now() - t0 };
  }

  /**
   * Scores every evaluation task on its validation split. `onBatch` hears each batch (task, examples predicted,
   * the task's total): the distributed worker's progress while it evaluates.
   */
  evaluate(
    step: number,
    split: 'validation' = 'validation',
    onBatch?: (task: string, done: number, total: number) => void,
  ): EvalReport {
    const scores: Record<string, number> = {};
    const metrics: Record<string, Record<string, number>> = {};
    const invalid: Record<string, number> = {};
    const evaluated: Record<string, number> = {};
    const evalTasks = this.options.evalTasks ?? this.tasks;
    for (const t of evalTasks) {
      const r = evaluateTask(
        this.model,
        this.method,
        this.encoder,
        { name: t.name, spec: t.spec, examples: t.validation },
        { ...this.options.eval, split, ...(onBatch ? { onBatch: (d, n) => onBatch(t.name, d, n) } : {}) },
      );
      scores[t.name] = r.score;
      metrics[t.name] = r.metrics as Record<string, number>;
      invalid[t.name] = r.invalid;
      evaluated[t.name] = r.predictions.length;
    }
    const mean = (names: readonly string[]) =>
      names.reduce((a, t) => a + scores[t]!, 0) / Math.max(1, names.length);
    const trained = evalTasks.filter((t) => this.byName.has(t.name)).map((t) => t.name);
    const heldOut = evalTasks.filter((t) => !this.byName.has(t.name)).map((t) => t.name);
    if (heldOut.length === 0) return { step, scores, metrics, invalid, evaluated, average: mean(trained) };
    const heldOutAverage = mean(heldOut);
    return {
      step,
      scores,
      metrics,
      invalid,
      evaluated,
      average: trained.length > 0 ? mean(trained) : heldOutAverage,
      heldOut: { tasks: heldOut, average: heldOutAverage },
    };
  }

  run(): TrainResult {
    const progress = this.options.progress ?? silentProgress;
    const steps: StepReport[] = [];
    const evals: EvalReport[] = [];
    let best: EvalReport | undefined;
    let bestParams = this.optimizer.parameters();
    const smooth = new Map<string, number>();
    const started = performance.now();
    let examplesDone = 0;
    const doEval = (step: number) => {
      const r = this.evaluate(step);
      evals.push(r);
      this.options.onReport?.({ eval: r });
      const isBest = !best || r.average > best.average;
      if (isBest) {
        best = r;
        bestParams = this.optimizer.parameters();
      }
      const held = r.heldOut ? ` | held-out average ${r.heldOut.average.toFixed(2)}` : '';
      progress.log(
        `eval @ step ${step}: average ${r.average.toFixed(2)}${isBest ? ' (best)' : ''}${held} | ${formatEvalScores(r)}`,
      );
    };
    let initial: EvalReport | undefined;
    if (this.options.evalAtStart && this.optimizer.step === 0) {
      // Evaluation draws no random numbers and leaves the parameters as they are: training is unchanged by it.
      initial = this.evaluate(0);
      this.options.onReport?.({ eval: initial });
      const held = initial.heldOut ? ` | held-out average ${initial.heldOut.average.toFixed(2)}` : '';
      progress.log(
        `eval @ step 0 (untrained): average ${initial.average.toFixed(2)}${held} | ${formatEvalScores(initial)}`,
      );
    }
    for (let s = this.optimizer.step; s < this.options.steps; s++) {
      const r = this.trainStep(s);
      steps.push(r);
      this.options.onReport?.({ step: r });
      examplesDone += r.examples;
      for (const [t, l] of Object.entries(r.perTaskLoss)) smooth.set(t, 0.9 * (smooth.get(t) ?? l) + 0.1 * l);
      const elapsed = (performance.now() - started) / 1000;
      const rate = examplesDone / Math.max(1e-9, elapsed);
      const eta = ((this.options.steps - s - 1) * this.options.batchSize) / Math.max(1e-9, rate);
      progress.update(
        formatProgressLine({
          step: s + 1,
          steps: this.options.steps,
          loss: r.loss,
          tasks: Object.fromEntries(smooth),
          examplesPerSecond: rate,
          etaSeconds: eta,
        }),
      );
      if (
        this.options.evalEvery > 0 &&
        (s + 1) % this.options.evalEvery === 0 &&
        s + 1 < this.options.steps
      ) {
        doEval(s + 1);
      }
    }
    doEval(this.options.steps);
    progress.done();
    return { steps, evals, best, bestParams, ...(initial ? { initial } : {}) };
  }
}
