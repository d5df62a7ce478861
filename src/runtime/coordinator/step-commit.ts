import type { Report } from '../../control/protocol.js';
import { formatProgressLine } from '../../train/progress.js';

type StepDone = Extract<Report, { type: 'step-done' }>;

/** A step every member reported with the same checksum: what progress, metrics and the bank hear about. */
export interface CommittedStep {
  stage: number;
  step: number;
  loss: number;
  perTask: Record<string, number>;
  /** Examples and target tokens of each task in the global batch (throughput per task). */
  tasks: Record<string, { examples: number; tokens: number }>;
  examples: number;
  tokens: number;
  generation: number;
  worldSize: number;
  ms: number;
  timings: {
    data: number;
    forwardBackward: number;
    allReduce: number;
    optimizer: number;
    coordination: number;
  };
}

/**
 * Step 1 and 2 of committing step s (Coordinator.commitStep): the members' reports must carry one parameter
 * checksum (identical replicas; anything else is `diverged`, listing them), and are then merged into one
 * CommittedStep: per-task losses and counts summed over the shards, each timing the slowest member's (it sets the
 * pace), and the rest of the step's wall time (`ms`, from publishing the plan to the last report) is coordination.
 */
export function mergeStepReports(
  results: readonly StepDone[],
  at: { stage: number; step: number; generation: number; worldSize: number; ms: number },
): CommittedStep | { diverged: string[] } {
  const sums = new Set(results.map((r) => r.checksum));
  if (sums.size !== 1) return { diverged: [...sums] };
  const perTask: Record<string, { nll: number; tokens: number; examples: number }> = {};
  for (const r of results) {
    for (const [t, l] of Object.entries(r.perTask)) {
      const e = perTask[t] ?? { nll: 0, tokens: 0, examples: 0 };
      perTask[t] = e;
      e.nll += l.nllSum;
      e.tokens += l.tokens;
      e.examples += l.examples;
    }
  }
  const max = (k: keyof StepDone['timings']) => Math.max(...results.map((r) => r.timings[k]));
  const compute = max('data') + max('forwardBackward') + max('allReduce') + max('optimizer');
  return {
    ...at,
    loss: results[0]!.loss,
    perTask: Object.fromEntries(Object.entries(perTask).map(([t, e]) => [t, e.nll / Math.max(1, e.tokens)])),
    tasks: Object.fromEntries(
      Object.entries(perTask).map(([t, e]) => [t, { examples: e.examples, tokens: e.tokens }]),
    ),
    examples: results.reduce((a, r) => a + r.examples, 0),
    tokens: results.reduce((a, r) => a + r.tokens, 0),
    timings: {
      data: max('data'),
      forwardBackward: max('forwardBackward'),
      allReduce: max('allReduce'),
      optimizer: max('optimizer'),
      coordination: Math.max(0, at.ms - compute),
    },
  };
}

/** The coordinator's progress line after a committed step, with the stage's throughput and ETA. */
export function stepProgressLine(
  c: CommittedStep,
  stage: { name: string; steps: number; batchSize: number },
  examplesPerSecond: number,
): string {
  const done = c.step + 1;
  const eta = ((stage.steps - done) * stage.batchSize) / Math.max(1e-9, examplesPerSecond);
  return formatProgressLine({
    label: stage.name,
    step: done,
    steps: stage.steps,
    loss: c.loss,
    tasks: c.perTask,
    examplesPerSecond,
    etaSeconds: eta,
    extra: [`${c.worldSize} workers, gen ${c.generation}`],
  });
}

/**
 * Whether a bank version follows the committed step `step` (1-based count of committed steps): the stage's last
 * step, every `every` steps, and every `evalEvery` steps (the stage's `train.evalEvery`, 0 for none), where rank 0
 * evaluates the prompts and the version records the scores (the stage hands on its best evaluated version).
 */
export function checkpointDue(
  committedSteps: number,
  stageSteps: number,
  every: number,
  evalEvery = 0,
): boolean {
  return (
    committedSteps >= stageSteps ||
    committedSteps % every === 0 ||
    (evalEvery > 0 && committedSteps % evalEvery === 0)
  );
}
