/**
 * What the methods bench (bench/methods.ts) trains: each method's stages on the demo suite, as a job config, and
 * which of its stages are measured (scored on the test split before and after they train).
 */
import { type JobConfig, parseJobConfig } from '../src/config/job-config.js';
import { DEMO_TASKS } from '../src/data/demo/index.js';
import type { EvalMode } from '../src/train/evaluate.js';

export const SOURCES = DEMO_TASKS.filter((t) => t.role === 'source').map((t) => t.name);
export const TARGETS = DEMO_TASKS.filter((t) => t.role === 'target').map((t) => t.name);

/** The compared methods, in table order. */
export const METHODS = ['pt', 'attempt', 'attempt-m', 'tpt', 'spt'] as const;
export type MethodKey = (typeof METHODS)[number];

/**
 * The held-out comparison (claim c): SPT's target stage, and a multi-task shared prompt (prompt tuning with one
 * prompt for every task), both trained on the targets but one and evaluated zero-shot on that one.
 */
export const HELD_OUT_RUNS = ['spt-held-out', 'pt-shared-held-out'] as const;
export type HeldOutKey = (typeof HELD_OUT_RUNS)[number];
export type RunKey = MethodKey | HeldOutKey;

export const METHOD_LABELS: Record<RunKey, string> = {
  pt: 'PT',
  attempt: 'ATTEMPT',
  'attempt-m': 'ATTEMPT-m',
  tpt: 'TPT',
  spt: 'SPT',
  'spt-held-out': 'SPT held-out',
  'pt-shared-held-out': 'shared PT held-out',
};

/** The source tasks that share a skill with `target` (DEMO_TASKS' skills): those ATTEMPT and TPT should use. */
export function relatedSources(target: string): string[] {
  const skills = DEMO_TASKS.find((t) => t.name === target)?.skills ?? [];
  return DEMO_TASKS.filter((t) => t.role === 'source' && t.skills.some((s) => skills.includes(s))).map(
    (t) => t.name,
  );
}

export interface Budget {
  steps: number;
  batchSize: number;
  lr: number;
  promptLength: number;
  evalExamples: number;
  evalMode: EvalMode;
  /** The backbone's training dropout; null: the checkpoint's dropout_rate. */
  dropout: number | null;
}

/** A method's job for one seed; the stages named in `measured` are scored on test before and after training. */
export interface BenchRun {
  key: RunKey;
  seed: number;
  job: JobConfig;
  measured: ReadonlySet<string>;
}

type RawStage = Record<string, unknown>;

function stages(key: RunKey, b: Budget, seed: number, heldOut: string | undefined): RawStage[] {
  const train = (lr: Record<string, number>, batchSize = b.batchSize) => ({
    steps: b.steps,
    batchSize,
    microBatchSize: batchSize,
    seed,
    dropout: b.dropout,
    lr,
    // Explicit, so every method gets the same decay (ATTEMPT's own default is 0).
    weightDecay: 1e-5,
    warmupSteps: Math.min(10, Math.floor(b.steps / 10)),
    evalEvery: Math.max(1, Math.ceil(b.steps / 3)),
    evalExamples: b.evalExamples,
    evalMode: b.evalMode,
  });
  const n = b.promptLength;
  const sourcePrompts: RawStage = {
    name: 'sources',
    method: { name: 'prompt-tuning', perTask: true, promptLength: n },
    tasks: SOURCES,
    train: train({ prompt: b.lr }),
  };
  const attempt = (multiTask: boolean) => ({
    name: 'attempt',
    multiTask,
    promptLength: n,
    attentionDim: 16,
    sources: SOURCES.map((s) => `prompt.${s}`),
  });
  const spt = { name: 'spt', memorySlots: 8, memoryLength: 4, topK: 2, promptLength: n, sharedPrompt: true };
  const sptMemory: RawStage = {
    name: 'memory',
    method: spt,
    tasks: SOURCES,
    train: train({ prompt: b.lr, memory: b.lr }),
  };
  const sptTarget = { ...spt, memoryFrom: 'memory', keysFrom: 'keys', promptFrom: 'prompt' };
  const trainedTargets = TARGETS.filter((t) => t !== heldOut);
  switch (key) {
    case 'pt':
      return [
        {
          name: 'targets',
          method: { name: 'prompt-tuning', perTask: true, promptLength: n },
          tasks: TARGETS,
          train: train({ prompt: b.lr }),
        },
      ];
    case 'attempt-m':
      return [
        sourcePrompts,
        {
          name: 'targets',
          method: attempt(true),
          tasks: TARGETS,
          train: train({ prompt: b.lr, attention: 0.05 }),
        },
      ];
    case 'attempt': {
      // Single-task ATTEMPT: one stage per target, each with its own target prompt and attention module. The
      // multi-task stages spread each batch over the targets, so a single-task stage gets the same updates with a
      // batch that many times smaller: every target prompt sees the same examples and updates as under PT.
      const batch = Math.max(1, Math.round(b.batchSize / TARGETS.length));
      return [
        sourcePrompts,
        ...TARGETS.map((t) => ({
          name: `target-${t}`,
          method: attempt(false),
          tasks: [t],
          train: train({ prompt: b.lr, attention: 0.05 }, batch),
        })),
      ];
    }
    case 'tpt': {
      const tpt = { bankSize: 60, topK: n, taskPromptLength: n };
      return [
        {
          name: 'bank',
          method: { name: 'tpt', stage: 'bank', ...tpt },
          tasks: SOURCES,
          train: train({ bank: b.lr }),
        },
        {
          name: 'targets',
          method: { name: 'tpt', stage: 'target', bankFrom: 'bank', ...tpt },
          tasks: TARGETS,
          train: train({ prompt: b.lr }),
        },
      ];
    }
    case 'spt':
      return [
        sptMemory,
        { name: 'targets', method: sptTarget, tasks: TARGETS, train: train({ prompt: b.lr, memory: b.lr }) },
      ];
    case 'spt-held-out':
      return [
        sptMemory,
        {
          name: 'targets',
          method: sptTarget,
          tasks: trainedTargets,
          eval: { tasks: TARGETS },
          train: train({ prompt: b.lr, memory: b.lr }),
        },
      ];
    case 'pt-shared-held-out':
      return [
        {
          name: 'targets',
          method: { name: 'prompt-tuning', perTask: false, promptLength: n },
          tasks: trainedTargets,
          eval: { tasks: TARGETS },
          train: train({ prompt: b.lr }),
        },
      ];
  }
}

export function benchRun(
  key: RunKey,
  backbone: string,
  budget: Budget,
  seed: number,
  heldOut?: string,
): BenchRun {
  if ((key === 'spt-held-out' || key === 'pt-shared-held-out') && !TARGETS.includes(heldOut ?? '')) {
    throw new Error(`${key}: the held-out task must be one of ${TARGETS.join(', ')}, got '${heldOut}'`);
  }
  const raw = stages(key, budget, seed, heldOut);
  const job = parseJobConfig(
    {
      jobId: `bench-${key}`,
      backbone,
      data: { suite: 'demo' },
      maxSourceLength: 64,
      maxTargetLength: 8,
      stages: raw,
    },
    { source: `bench methods (${key}, seed ${seed})` },
  );
  // Every stage on the target tasks is measured; the source stages before them are not.
  const measured = new Set(
    job.stages.filter((s) => s.tasks.every((t) => TARGETS.includes(t))).map((s) => s.name),
  );
  return { key, seed, job, measured };
}
