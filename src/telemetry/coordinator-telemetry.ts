import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { promptmeshVersion } from './build-info.js';
import {
  CHECKPOINT_KINDS,
  COORDINATOR_PHASES,
  DROPPED_SUBJECTS,
  MEMBERSHIP_REASONS,
  METRICS,
  STEP_PHASES,
} from './metric-definitions.js';
import { makeCounter, makeGauge, makeHistogram } from './registry.js';

/** What the telemetry needs of a committed step (structurally the coordinator's CommittedStep). */
export interface CommittedStepSample {
  loss: number;
  perTask: Record<string, number>;
  tasks?: Record<string, { examples: number; tokens: number }>;
  ms: number;
  timings: {
    data: number;
    forwardBackward: number;
    allReduce: number;
    optimizer: number;
    coordination: number;
  };
}

/** The coordinator's live state, read at scrape time (structurally Coordinator.status). */
export interface CoordinatorStatusSample {
  generation: number;
  stage: number;
  step: number;
  members: number;
  workers: number;
  phase: string;
}

export interface CoordinatorTelemetryOptions {
  minWorkers: number;
  maxWorkers: number;
  /** Step count of each stage of the job. */
  stageSteps: readonly number[];
  now?: () => number;
}

/**
 * The coordinator's metrics. Its methods have the shape of CoordinatorEvents, so the object itself is passed to
 * the Coordinator as its events hook; gauges of live state are read from the status at scrape time.
 */
export class CoordinatorTelemetry {
  private status: (() => CoordinatorStatusSample) | undefined;
  private readonly steps: Counter<string>;
  private readonly examples: Counter<string>;
  private readonly tokens: Counter<string>;
  private readonly loss: Gauge<string>;
  private readonly batchLoss: Gauge<string>;
  private readonly stepSeconds: Histogram<string>;
  private readonly phaseSeconds: Histogram<string>;
  private readonly membership: Counter<string>;
  private readonly checkpoints: Counter<string>;
  private readonly dropped: Counter<string>;
  private readonly headStep: Gauge<string>;
  private readonly headStage: Gauge<string>;
  private readonly headTime: Gauge<string>;
  private readonly now: () => number;

  constructor(
    readonly registry: Registry,
    opts: CoordinatorTelemetryOptions,
  ) {
    const r = registry;
    const role = 'coordinator';
    this.now = opts.now ?? Date.now;
    makeGauge(r, role, METRICS.buildInfo).set({ version: promptmeshVersion(), role }, 1);
    this.steps = makeCounter(r, role, METRICS.steps);
    this.examples = makeCounter(r, role, METRICS.examples);
    this.tokens = makeCounter(r, role, METRICS.tokens);
    this.loss = makeGauge(r, role, METRICS.loss);
    this.batchLoss = makeGauge(r, role, METRICS.batchLoss);
    this.stepSeconds = makeHistogram(r, role, METRICS.stepSeconds);
    this.phaseSeconds = makeHistogram(r, role, METRICS.stepPhaseSeconds);
    this.membership = makeCounter(r, role, METRICS.membershipChanges);
    this.checkpoints = makeCounter(r, role, METRICS.checkpointCommits);
    this.dropped = makeCounter(r, role, METRICS.controlMessagesDropped);
    this.headStep = makeGauge(r, role, METRICS.bankHeadStep);
    this.headStage = makeGauge(r, role, METRICS.bankHeadStage);
    this.headTime = makeGauge(r, role, METRICS.bankHeadTimestamp);
    this.headStep.set(-1);
    this.headStage.set(-1);
    this.headTime.set(0);
    // Series of every bounded label value exist from the start, so rate() and increase() see the first event.
    for (const reason of MEMBERSHIP_REASONS) this.membership.inc({ reason }, 0);
    for (const kind of CHECKPOINT_KINDS) this.checkpoints.inc({ kind }, 0);
    for (const subject of DROPPED_SUBJECTS) this.dropped.inc({ subject }, 0);
    for (const phase of STEP_PHASES) this.phaseSeconds.zero({ phase });
    makeGauge(r, role, METRICS.minWorkers).set(opts.minWorkers);
    makeGauge(r, role, METRICS.maxWorkers).set(opts.maxWorkers);
    const live = (key: keyof CoordinatorStatusSample) => (g: Gauge<string>) => {
      const s = this.status?.();
      if (s) g.set(Number(s[key]));
    };
    makeGauge(r, role, METRICS.generation, live('generation'));
    makeGauge(r, role, METRICS.worldSize, live('members'));
    makeGauge(r, role, METRICS.workers, live('workers'));
    makeGauge(r, role, METRICS.stage, live('stage'));
    makeGauge(r, role, METRICS.stageStep, live('step'));
    makeGauge(r, role, METRICS.stageSteps, (g) => {
      const s = this.status?.();
      if (s) g.set(opts.stageSteps[s.stage] ?? 0);
    });
    makeGauge(r, role, METRICS.coordinatorPhase, (g) => {
      const s = this.status?.();
      for (const phase of COORDINATOR_PHASES) g.set({ phase }, s?.phase === phase ? 1 : 0);
    });
  }

  /** Connects the scrape-time gauges to the coordinator once it exists. */
  attach(status: () => CoordinatorStatusSample): void {
    this.status = status;
  }

  onStep(s: CommittedStepSample): void {
    this.steps.inc();
    this.batchLoss.set(s.loss);
    for (const [task, loss] of Object.entries(s.perTask)) this.loss.set({ task }, loss);
    for (const [task, c] of Object.entries(s.tasks ?? {})) {
      this.examples.inc({ task }, c.examples);
      this.tokens.inc({ task }, c.tokens);
    }
    this.stepSeconds.observe(s.ms / 1000);
    const t = s.timings;
    this.phaseSeconds.observe({ phase: 'data' }, t.data / 1000);
    this.phaseSeconds.observe({ phase: 'forward_backward' }, t.forwardBackward / 1000);
    this.phaseSeconds.observe({ phase: 'all_reduce' }, t.allReduce / 1000);
    this.phaseSeconds.observe({ phase: 'optimizer' }, t.optimizer / 1000);
    this.phaseSeconds.observe({ phase: 'coordination' }, t.coordination / 1000);
  }

  onVersion(v: { stage: number; step: number; final: boolean }): void {
    this.checkpoints.inc({ kind: v.final ? 'stage_final' : 'periodic' });
    this.headStep.set(v.step);
    this.headStage.set(v.stage);
    this.headTime.set(this.now() / 1000);
  }

  onMembership(reason: (typeof MEMBERSHIP_REASONS)[number]): void {
    this.membership.inc({ reason });
  }

  onDropped(subject: string): void {
    // Only the bounded set becomes a label value; anything else would be a new series per bogus subject.
    if ((DROPPED_SUBJECTS as readonly string[]).includes(subject)) this.dropped.inc({ subject });
  }
}
