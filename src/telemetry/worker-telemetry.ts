import * as tf from '@tensorflow/tfjs-core';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { currentBackend } from '../backend/index.js';
import { promptmeshVersion } from './build-info.js';
import { METRICS, WORKER_PHASES } from './metric-definitions.js';
import { makeCounter, makeGauge, makeHistogram } from './registry.js';

/** What the telemetry needs of a step this worker computed (structurally the worker's step-done report). */
export interface WorkerStepSample {
  generation: number;
  examples: number;
  timings: { data: number; forwardBackward: number; allReduce: number; optimizer: number };
  allReduceBytes?: number;
}

/** Cumulative counters of the current collective (structurally CollectiveStats); they restart per generation. */
export interface CollectiveStatsSample {
  bytesSent: number;
  bytesReceived: number;
  staleRefused: number;
  foreignRefused: number;
}

/** An evaluation (structurally the trainer's EvalReport): task scores and metrics on a 0-100 scale. */
export interface EvalSample {
  scores: Record<string, number>;
  metrics: Record<string, Record<string, number>>;
}

type Totals = CollectiveStatsSample;
const ZERO: Totals = { bytesSent: 0, bytesReceived: 0, staleRefused: 0, foreignRefused: 0 };

/**
 * A worker's metrics. Its methods have the shape of WorkerEvents, so the object itself is the worker's events
 * hook. Tensor memory and the backend are read at scrape time.
 */
export class WorkerTelemetry {
  private readonly steps: Counter<string>;
  private readonly examples: Counter<string>;
  private readonly phaseSeconds: Histogram<string>;
  private readonly allReduceBytes: Counter<string>;
  private readonly allReduceSeconds: Histogram<string>;
  private readonly sent: Counter<string>;
  private readonly received: Counter<string>;
  private readonly refused: Counter<string>;
  private readonly generation: Gauge<string>;
  private readonly rank: Gauge<string>;
  private readonly bankCommits: Counter<string>;
  private readonly bankCommitSeconds: Histogram<string>;
  private readonly checkpointFailures: Counter<string>;
  private readonly evalScore: Gauge<string>;
  /** The collective's counters at the last step, per generation: each generation has a fresh collective. */
  private seen: { generation: number; totals: Totals } = { generation: -1, totals: ZERO };

  constructor(readonly registry: Registry) {
    const r = registry;
    const role = 'worker';
    makeGauge(r, role, METRICS.buildInfo).set({ version: promptmeshVersion(), role }, 1);
    this.steps = makeCounter(r, role, METRICS.workerSteps);
    this.examples = makeCounter(r, role, METRICS.workerExamples);
    this.phaseSeconds = makeHistogram(r, role, METRICS.workerPhaseSeconds);
    for (const phase of WORKER_PHASES) this.phaseSeconds.zero({ phase });
    this.allReduceBytes = makeCounter(r, role, METRICS.allReduceBytes);
    this.allReduceSeconds = makeHistogram(r, role, METRICS.allReduceSeconds);
    this.sent = makeCounter(r, role, METRICS.collectiveSentBytes);
    this.received = makeCounter(r, role, METRICS.collectiveReceivedBytes);
    this.refused = makeCounter(r, role, METRICS.collectiveRefusedFrames);
    for (const reason of ['stale', 'foreign']) this.refused.inc({ reason }, 0);
    this.generation = makeGauge(r, role, METRICS.generation);
    this.generation.set(-1);
    this.rank = makeGauge(r, role, METRICS.workerRank);
    this.rank.set(-1);
    this.bankCommits = makeCounter(r, role, METRICS.bankCommits);
    this.bankCommitSeconds = makeHistogram(r, role, METRICS.bankCommitSeconds);
    this.checkpointFailures = makeCounter(r, role, METRICS.checkpointWriteFailures);
    this.evalScore = makeGauge(r, role, METRICS.evalScore);
    // tf.memory() needs an initialised backend; before selectBackend there is nothing to report.
    makeGauge(r, role, METRICS.tensorMemory, (g) => {
      if (currentBackend()) g.set(tf.memory().numBytes);
    });
    makeGauge(r, role, METRICS.tensors, (g) => {
      if (currentBackend()) g.set(tf.memory().numTensors);
    });
    makeGauge(r, role, METRICS.backendInfo, (g) => {
      const b = currentBackend();
      g.reset();
      if (b) g.set({ backend: b.name }, 1);
    });
  }

  onGeneration(g: { generation: number; rank: number }): void {
    this.generation.set(g.generation);
    this.rank.set(g.rank);
  }

  onStep(s: WorkerStepSample, stats?: CollectiveStatsSample): void {
    this.steps.inc();
    this.examples.inc(s.examples);
    const t = s.timings;
    this.phaseSeconds.observe({ phase: 'data' }, t.data / 1000);
    this.phaseSeconds.observe({ phase: 'forward_backward' }, t.forwardBackward / 1000);
    this.phaseSeconds.observe({ phase: 'all_reduce' }, t.allReduce / 1000);
    this.phaseSeconds.observe({ phase: 'optimizer' }, t.optimizer / 1000);
    this.allReduceSeconds.observe(t.allReduce / 1000);
    if (s.allReduceBytes) this.allReduceBytes.inc(s.allReduceBytes);
    if (stats) {
      const prev = this.seen.generation === s.generation ? this.seen.totals : ZERO;
      this.sent.inc(Math.max(0, stats.bytesSent - prev.bytesSent));
      this.received.inc(Math.max(0, stats.bytesReceived - prev.bytesReceived));
      this.refused.inc({ reason: 'stale' }, Math.max(0, stats.staleRefused - prev.staleRefused));
      this.refused.inc({ reason: 'foreign' }, Math.max(0, stats.foreignRefused - prev.foreignRefused));
      this.seen = { generation: s.generation, totals: { ...stats } };
    }
  }

  onCheckpoint(c: { seconds: number }): void {
    this.bankCommits.inc();
    this.bankCommitSeconds.observe(c.seconds);
  }

  onCheckpointFailure(reason: string): void {
    this.checkpointFailures.inc({ reason });
  }

  /** Scores are 0-100 in the trainer; Prometheus convention is a 0-1 ratio. */
  onEval(e: EvalSample): void {
    for (const [task, score] of Object.entries(e.scores)) {
      this.evalScore.set({ task, metric: 'score' }, score / 100);
      for (const [metric, v] of Object.entries(e.metrics[task] ?? {}))
        this.evalScore.set({ task, metric }, v / 100);
    }
  }
}
