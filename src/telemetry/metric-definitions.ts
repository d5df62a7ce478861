/**
 * Every metric promptmesh exports, in one table: the dashboards, the alert examples in docs/monitoring.md and the
 * tests read this table, so a metric that is renamed here and not there fails a test instead of a panel.
 *
 * Conventions (https://prometheus.io/docs/practices/naming/): base units (seconds, bytes, ratios 0-1), `_total` on
 * counters, `_info` gauges with value 1 for labels that describe the process. Labels are bounded: task names come
 * from the job config, phases/reasons/kinds are fixed sets here, metric names are METRIC_NAMES. Worker ids are not
 * labels: on the coordinator they would grow without bound over a long job (every restarted pod without a stable
 * id joins under a new one, and a series lives until the process exits), and Prometheus already tells workers
 * apart by their own target labels (instance, pod) because every worker is scraped itself.
 */

/** `server`: `promptmesh serve`, the inference server. */
export type MetricRole = 'coordinator' | 'worker' | 'server';
export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricDefinition {
  name: string;
  type: MetricType;
  help: string;
  labels: readonly string[];
  /** Which processes export it. */
  roles: readonly MetricRole[];
  buckets?: readonly number[];
}

/** Step-phase and all-reduce durations: from a millisecond on a tiny model to a minute on a slow GPU step. */
export const DURATION_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];
/** Bank commits write every trainable tensor plus optimizer moments: tens of milliseconds to minutes. */
export const COMMIT_BUCKETS: readonly number[] = [
  0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
];

/** Phases of one committed step, as the coordinator sees them. Coordination = wall time not spent computing. */
export const STEP_PHASES = ['data', 'forward_backward', 'all_reduce', 'optimizer', 'coordination'] as const;
/** Phases a worker measures itself. */
export const WORKER_PHASES = ['data', 'forward_backward', 'all_reduce', 'optimizer'] as const;
export const MEMBERSHIP_REASONS = [
  'joined',
  'left',
  'timeout',
  'hung',
  'failed',
  'refused',
  'rejoin',
] as const;
/** The coordinator's control subjects whose unauthenticated or undecodable messages are dropped (and counted). */
export const DROPPED_SUBJECTS = ['join', 'heartbeat', 'leave', 'report'] as const;
export const COORDINATOR_PHASES = ['waiting', 'forming', 'stepping', 'checkpointing', 'done'] as const;
export const CHECKPOINT_KINDS = ['periodic', 'stage_final'] as const;

const C: readonly MetricRole[] = ['coordinator'];
const W: readonly MetricRole[] = ['worker'];
const BOTH: readonly MetricRole[] = ['coordinator', 'worker'];
const S: readonly MetricRole[] = ['server'];
/** Request latencies of the inference server: a tiny model answers in a millisecond, a big batch in seconds. */
export const SERVE_LATENCY_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
/** Rows per forward pass of the inference server's batcher. */
export const SERVE_BATCH_BUCKETS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

export const METRICS = {
  buildInfo: {
    name: 'promptmesh_build_info',
    type: 'gauge',
    help: 'Always 1; the promptmesh version and process role in labels',
    labels: ['version', 'role'],
    roles: BOTH,
  },
  generation: {
    name: 'promptmesh_generation',
    type: 'gauge',
    help: 'Generation (membership epoch) this process is in; it rises on every re-formation',
    labels: [],
    roles: BOTH,
  },
  // Coordinator: the job as a whole (committed work only, so a retried step is counted once).
  steps: {
    name: 'promptmesh_steps_total',
    type: 'counter',
    help: 'Training steps committed (every replica agreed)',
    labels: [],
    roles: C,
  },
  examples: {
    name: 'promptmesh_examples_total',
    type: 'counter',
    help: 'Training examples in committed steps, by task',
    labels: ['task'],
    roles: C,
  },
  tokens: {
    name: 'promptmesh_tokens_total',
    type: 'counter',
    help: 'Target tokens the loss was computed over in committed steps, by task',
    labels: ['task'],
    roles: C,
  },
  loss: {
    name: 'promptmesh_loss',
    type: 'gauge',
    help: 'Mean per-token negative log-likelihood of the task in the last committed step that had it',
    labels: ['task'],
    roles: C,
  },
  batchLoss: {
    name: 'promptmesh_batch_loss',
    type: 'gauge',
    help: 'Mean per-token negative log-likelihood of the whole global batch in the last committed step',
    labels: [],
    roles: C,
  },
  stepSeconds: {
    name: 'promptmesh_step_seconds',
    type: 'histogram',
    help: 'Wall time of a committed step, from plan to commit',
    labels: [],
    roles: C,
    buckets: DURATION_BUCKETS,
  },
  stepPhaseSeconds: {
    name: 'promptmesh_step_phase_seconds',
    type: 'histogram',
    help: 'Committed step time by phase: compute phases are the slowest worker, coordination is the rest of the wall time',
    labels: ['phase'],
    roles: C,
    buckets: DURATION_BUCKETS,
  },
  worldSize: {
    name: 'promptmesh_world_size',
    type: 'gauge',
    help: 'Workers in the current generation (ranks of the all-reduce ring)',
    labels: [],
    roles: C,
  },
  workers: {
    name: 'promptmesh_workers',
    type: 'gauge',
    help: 'Workers admitted and alive, members or waiting for the next generation',
    labels: [],
    roles: C,
  },
  minWorkers: {
    name: 'promptmesh_min_workers',
    type: 'gauge',
    help: 'Workers the coordinator waits for before forming a generation',
    labels: [],
    roles: C,
  },
  maxWorkers: {
    name: 'promptmesh_max_workers',
    type: 'gauge',
    help: 'Most workers the coordinator admits',
    labels: [],
    roles: C,
  },
  stage: {
    name: 'promptmesh_stage',
    type: 'gauge',
    help: 'Index of the job stage being trained (0-based)',
    labels: [],
    roles: C,
  },
  stageStep: {
    name: 'promptmesh_stage_step',
    type: 'gauge',
    help: 'Steps of the current stage committed so far',
    labels: [],
    roles: C,
  },
  stageSteps: {
    name: 'promptmesh_stage_steps',
    type: 'gauge',
    help: 'Steps the current stage trains for',
    labels: [],
    roles: C,
  },
  coordinatorPhase: {
    name: 'promptmesh_coordinator_phase',
    type: 'gauge',
    help: '1 for the phase the coordinator is in, 0 for the others',
    labels: ['phase'],
    roles: C,
  },
  membershipChanges: {
    name: 'promptmesh_membership_changes_total',
    type: 'counter',
    help: 'Membership events: workers joined, left, timed out (missed heartbeats), failed (reported an error), refused',
    labels: ['reason'],
    roles: C,
  },
  controlMessagesDropped: {
    name: 'promptmesh_control_messages_dropped_total',
    type: 'counter',
    help: 'Messages on a control subject dropped unauthenticated or undecodable (logged a few per 10 s at most)',
    labels: ['subject'],
    roles: C,
  },
  checkpointCommits: {
    name: 'promptmesh_checkpoint_commits_total',
    type: 'counter',
    help: 'Bank versions committed by the checkpoint protocol, periodic or at the end of a stage',
    labels: ['kind'],
    roles: C,
  },
  bankHeadStep: {
    name: 'promptmesh_bank_head_step',
    type: 'gauge',
    help: 'Step of the latest bank version the coordinator committed (-1 before the first)',
    labels: [],
    roles: C,
  },
  bankHeadStage: {
    name: 'promptmesh_bank_head_stage',
    type: 'gauge',
    help: 'Stage of the latest bank version the coordinator committed (-1 before the first)',
    labels: [],
    roles: C,
  },
  bankHeadTimestamp: {
    name: 'promptmesh_bank_head_timestamp_seconds',
    type: 'gauge',
    help: 'Unix time the latest bank version was committed (0 before the first)',
    labels: [],
    roles: C,
  },
  // Worker: what this process computed and sent.
  workerSteps: {
    name: 'promptmesh_worker_steps_total',
    type: 'counter',
    help: 'Steps this worker computed and all-reduced (a step retried after a failure counts again)',
    labels: [],
    roles: W,
  },
  workerExamples: {
    name: 'promptmesh_worker_examples_total',
    type: 'counter',
    help: 'Examples in the shards this worker computed',
    labels: [],
    roles: W,
  },
  workerPhaseSeconds: {
    name: 'promptmesh_worker_phase_seconds',
    type: 'histogram',
    help: "This worker's step time by phase",
    labels: ['phase'],
    roles: W,
    buckets: DURATION_BUCKETS,
  },
  allReduceBytes: {
    name: 'promptmesh_allreduce_bytes_total',
    type: 'counter',
    help: 'Bytes of fused gradient buffers all-reduced (the payload, not the wire traffic)',
    labels: [],
    roles: W,
  },
  allReduceSeconds: {
    name: 'promptmesh_allreduce_seconds',
    type: 'histogram',
    help: 'Time of one all-reduce of the fused gradient buffer',
    labels: [],
    roles: W,
    buckets: DURATION_BUCKETS,
  },
  collectiveSentBytes: {
    name: 'promptmesh_collective_sent_bytes_total',
    type: 'counter',
    help: 'Bytes this worker sent to its peers over the collective transport',
    labels: [],
    roles: W,
  },
  collectiveReceivedBytes: {
    name: 'promptmesh_collective_received_bytes_total',
    type: 'counter',
    help: 'Bytes this worker received from its peers over the collective transport',
    labels: [],
    roles: W,
  },
  collectiveRefusedFrames: {
    name: 'promptmesh_collective_refused_frames_total',
    type: 'counter',
    help: 'Collective frames refused: stale (older step or generation) or foreign (another job or a newer generation)',
    labels: ['reason'],
    roles: W,
  },
  workerRank: {
    name: 'promptmesh_worker_rank',
    type: 'gauge',
    help: 'Rank of this worker in the current generation (-1 when not a member)',
    labels: [],
    roles: W,
  },
  bankCommits: {
    name: 'promptmesh_bank_commits_total',
    type: 'counter',
    help: 'Bank versions this worker wrote (rank 0 writes the checkpoints)',
    labels: [],
    roles: W,
  },
  checkpointWriteFailures: {
    name: 'promptmesh_checkpoint_write_failures_total',
    type: 'counter',
    help: 'Bank writes of a checkpoint that failed, by cause: disk_full, io_error, lock_timeout (retried), bank_conflict, other',
    labels: ['reason'],
    roles: W,
  },
  bankCommitSeconds: {
    name: 'promptmesh_bank_commit_seconds',
    type: 'histogram',
    help: 'Time to write one bank version, evaluation excluded',
    labels: [],
    roles: W,
    buckets: COMMIT_BUCKETS,
  },
  evalScore: {
    name: 'promptmesh_eval_score',
    type: 'gauge',
    help: 'Validation score of the latest evaluation as a ratio (0-1); metric="score" is the mean of the task metrics',
    labels: ['task', 'metric'],
    roles: W,
  },
  tensorMemory: {
    name: 'promptmesh_tensor_memory_bytes',
    type: 'gauge',
    help: 'Bytes held by live TensorFlow.js tensors (tf.memory().numBytes)',
    labels: [],
    roles: W,
  },
  tensors: {
    name: 'promptmesh_tensors',
    type: 'gauge',
    help: 'Live TensorFlow.js tensors (tf.memory().numTensors); steady growth is a leak',
    labels: [],
    roles: W,
  },
  backendInfo: {
    name: 'promptmesh_backend_info',
    type: 'gauge',
    help: 'Always 1; the TensorFlow.js backend this worker runs on (node-gpu, node, wasm, cpu) in a label',
    labels: ['backend'],
    roles: W,
  },
  // Inference server (`promptmesh serve`). Routes and codes are fixed sets; tasks are the served version's.
  serveRequestSeconds: {
    name: 'promptmesh_serve_request_duration_seconds',
    type: 'histogram',
    help: 'Time from a request arriving to its answer being sent, by route and HTTP status code',
    labels: ['route', 'code'],
    roles: S,
    buckets: SERVE_LATENCY_BUCKETS,
  },
  serveBatchSize: {
    name: 'promptmesh_serve_batch_size',
    type: 'histogram',
    help: 'Rows in each forward pass the batcher ran (concurrent requests batched together)',
    labels: [],
    roles: S,
    buckets: SERVE_BATCH_BUCKETS,
  },
  serveExamples: {
    name: 'promptmesh_serve_examples_total',
    type: 'counter',
    help: 'Rows predicted, by task',
    labels: ['task'],
    roles: S,
  },
  serveExamplesPerSecond: {
    name: 'promptmesh_serve_examples_per_second',
    type: 'gauge',
    help: 'Rows predicted per second over the last 10 seconds',
    labels: [],
    roles: S,
  },
  serveVersionInfo: {
    name: 'promptmesh_serve_version_info',
    type: 'gauge',
    help: 'Always 1; the bank version served, its job, stage and method in labels',
    labels: ['version', 'job', 'stage', 'method'],
    roles: S,
  },
  serveVersionSwitches: {
    name: 'promptmesh_serve_version_switches_total',
    type: 'counter',
    help: 'Times the server moved to another version because the tag or head it follows moved',
    labels: [],
    roles: S,
  },
} as const satisfies Record<string, MetricDefinition>;

export type MetricKey = keyof typeof METRICS;

/** Names a process of this role exports (histograms as their base name). */
export function metricNames(role?: MetricRole): string[] {
  return Object.values(METRICS as Record<string, MetricDefinition>)
    .filter((m) => role === undefined || m.roles.includes(role))
    .map((m) => m.name);
}

/** Series names Prometheus stores for a metric: a histogram is `_bucket`, `_sum` and `_count`. */
export function seriesNames(def: MetricDefinition): string[] {
  return def.type === 'histogram'
    ? [`${def.name}_bucket`, `${def.name}_sum`, `${def.name}_count`]
    : [def.name];
}
