/**
 * The job config: what to train (backbone, data, method stages) and how (optimizer, batch, evaluation). Parsed and
 * validated once at the edge; everything downstream trusts it. Every field is documented in docs/configuration.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { methodFactory } from '../methods/index.js';
import { DEFAULT_EVAL_MODE, EVAL_MODES, type EvalMode } from '../train/evaluate.js';

export interface TrainSettings {
  steps: number;
  batchSize: number;
  microBatchSize: number;
  seed: number;
  /**
   * Dropout rate of the frozen backbone while training, at every place Hugging Face's T5 applies it; null: the
   * checkpoint's `dropout_rate`. Evaluation never drops.
   */
  dropout: number | null;
  lr: { prompt: number; attention?: number; bank?: number; memory?: number };
  weightDecay: number;
  warmupSteps: number;
  clipNorm: number;
  evalEvery: number;
  evalExamples: number;
  evalBatchSize: number;
  /** How tasks with label words are predicted in evaluation (see EvalMode): 'generate' as the papers, or 'rank'. */
  evalMode: EvalMode;
  /**
   * Also evaluate the stage's parameters before the first update (step 0: the untrained prompt), on the same
   * validation examples, so the run history shows what training changed. That evaluation is recorded, never picked
   * as the best parameters.
   */
  evalAtStart: boolean;
  mixing: { cap?: number; temperature?: number };
}

export interface StageConfig {
  name: string;
  /** Method config including `name` (the registered method) and its options. */
  method: { name: string } & Record<string, unknown>;
  /** Tasks this stage trains on. */
  tasks: string[];
  train: TrainSettings;
  /**
   * Tasks scored at each evaluation (validation split), in order. Default: the stage's tasks. A task outside
   * `tasks` is held out (zero-shot): scored and reported, never trained on, and kept out of the average that picks
   * the best parameters unless no training task is evaluated. Only methods that serve unseen tasks accept them.
   */
  eval: { tasks: string[] };
}

export interface JobConfig {
  jobId: string;
  backbone: { checkpoint: string; tokenizer: string };
  data: { suite: 'demo'; seed?: number } | { root: string; onMalformed: 'error' | 'skip' };
  maxSourceLength: number;
  /**
   * Target tokens, counting </s>: training targets are truncated to it, and evaluation generates at most this many
   * tokens, so a generated answer can be as long as a trained one.
   */
  maxTargetLength: number;
  stages: StageConfig[];
}

/** The released ATTEMPT's `max_target_length`: long enough for SQuAD and ReCoRD answers. */
export const DEFAULT_MAX_TARGET_LENGTH = 128;

export class JobConfigError extends Error {
  override name = 'JobConfigError';
  constructor(
    readonly field: string,
    message: string,
    readonly source = 'job config',
  ) {
    super(`${source}: ${field}: ${message}`);
  }
}

export const DEFAULT_TRAIN: TrainSettings = Object.freeze({
  steps: 1000,
  batchSize: 32,
  microBatchSize: 8,
  seed: 42,
  dropout: null,
  lr: { prompt: 0.3 },
  weightDecay: 1e-5,
  warmupSteps: 500,
  clipNorm: 1.0,
  evalEvery: 0,
  evalExamples: 200,
  evalBatchSize: 32,
  evalMode: DEFAULT_EVAL_MODE,
  evalAtStart: false,
  mixing: {},
}) as TrainSettings;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The range of a numeric field and why it is bounded there. Every number of a job config has one, checked when
 * the config is read, before anything is allocated: a batch of 1e9 examples or 1e300 steps is refused with the
 * reason instead of growing memory until the process dies.
 */
export interface NumericRange {
  min: number;
  max: number;
  integer?: boolean;
  /** Why the field is bounded (shown in the error). */
  why: string;
}

/** 2^32 - 1: seeds feed 32-bit generators (src/data/rng.ts). */
const MAX_SEED = 0xffff_ffff;
const MAX_STEPS = 10_000_000;

/** The ranges of the job config's numeric fields (docs/configuration.md lists them). */
export const JOB_RANGES = {
  steps: {
    min: 1,
    max: MAX_STEPS,
    integer: true,
    why: 'optimizer steps of a stage; a longer run is several stages or a resume with a larger --steps',
  },
  batchSize: {
    min: 1,
    max: 65_536,
    integer: true,
    why: 'examples in one global batch, which the coordinator plans and shards in memory at every step',
  },
  microBatchSize: {
    min: 1,
    max: 4096,
    integer: true,
    why: 'examples in one forward/backward pass, whose activations a worker holds at once',
  },
  seed: { min: 0, max: MAX_SEED, integer: true, why: 'seeds are 32-bit' },
  lr: {
    min: 0,
    max: 10,
    why: 'a learning rate; AdamW moves each parameter by about lr per step, so beyond 10 training diverges at once (prompt tuning uses 0.3)',
  },
  weightDecay: {
    min: 0,
    max: 1,
    why: 'decoupled weight decay shrinks parameters by lr x weightDecay per step; above 1 it erases them',
  },
  warmupSteps: { min: 0, max: MAX_STEPS, integer: true, why: 'steps of linear warm-up, fewer than steps' },
  clipNorm: {
    min: 0,
    max: 1e6,
    why: 'the global gradient norm is clipped to it; 0 turns clipping off, and a larger bound never clips either',
  },
  evalEvery: { min: 0, max: MAX_STEPS, integer: true, why: 'steps between evaluations (0: only at the end)' },
  evalExamples: {
    min: 0,
    max: 1_000_000,
    integer: true,
    why: 'validation examples scored per task at each evaluation',
  },
  evalBatchSize: {
    min: 1,
    max: 4096,
    integer: true,
    why: 'examples in one evaluation pass, held in memory at once',
  },
  mixingCap: {
    min: 1,
    max: 2 ** 31,
    integer: true,
    why: "the size cap of a task's mixing rate, in examples",
  },
  mixingTemperature: {
    min: 1e-6,
    max: 1000,
    why: 'mixing rates are raised to 1/temperature; at 1000 they are uniform already',
  },
  maxSourceLength: {
    min: 2,
    max: 8192,
    integer: true,
    why: 'input tokens; attention memory grows with its square',
  },
  maxTargetLength: {
    min: 1,
    max: 4096,
    integer: true,
    why: 'target tokens, also the most a generated answer may have',
  },
} as const satisfies Record<string, NumericRange>;

/** A --steps override is held to the same range as the config's `steps`. */
export function checkStepsOverride(steps: number): number {
  return checkRange(steps, JOB_RANGES.steps, '--steps', 'command line');
}

function num(o: Obj, key: string, field: string, src: string, fallback: number, range: NumericRange): number {
  const v = key in o ? o[key] : fallback;
  return checkRange(v, range, field, src);
}

function checkRange(v: unknown, range: NumericRange, field: string, src: string): number {
  const { min, max, integer } = range;
  if (
    typeof v !== 'number' ||
    !Number.isFinite(v) ||
    v < min ||
    v > max ||
    (integer && !Number.isInteger(v))
  ) {
    throw new JobConfigError(
      field,
      `expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max} (${range.why}), got ${JSON.stringify(v)}`,
      src,
    );
  }
  return v;
}

function oneOf<T extends string>(
  o: Obj,
  key: string,
  field: string,
  src: string,
  fallback: T,
  allowed: readonly T[],
): T {
  const v = key in o ? o[key] : fallback;
  if (!allowed.includes(v as T)) {
    throw new JobConfigError(
      field,
      `expected one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${JSON.stringify(v)}`,
      src,
    );
  }
  return v as T;
}

function bool(o: Obj, key: string, field: string, src: string, fallback: boolean): boolean {
  const v = key in o ? o[key] : fallback;
  if (typeof v !== 'boolean')
    throw new JobConfigError(field, `expected true or false, got ${JSON.stringify(v)}`, src);
  return v;
}

function checkKeys(o: Obj, allowed: readonly string[], field: string, src: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) {
      throw new JobConfigError(
        `${field}${field ? '.' : ''}${k}`,
        `unknown option (known: ${allowed.join(', ')})`,
        src,
      );
    }
  }
}

function parseTrain(raw: unknown, base: TrainSettings, field: string, src: string): TrainSettings {
  if (raw === undefined) return base;
  if (!isObj(raw)) throw new JobConfigError(field, 'expected an object', src);
  checkKeys(
    raw,
    [
      'steps',
      'batchSize',
      'microBatchSize',
      'seed',
      'dropout',
      'lr',
      'weightDecay',
      'warmupSteps',
      'clipNorm',
      'evalEvery',
      'evalExamples',
      'evalBatchSize',
      'evalMode',
      'evalAtStart',
      'mixing',
    ],
    field,
    src,
  );
  let lr = base.lr;
  if ('lr' in raw) {
    if (typeof raw.lr === 'number') lr = { prompt: checkRange(raw.lr, JOB_RANGES.lr, `${field}.lr`, src) };
    else if (isObj(raw.lr)) {
      checkKeys(raw.lr, ['prompt', 'attention', 'bank', 'memory'], `${field}.lr`, src);
      lr = { ...base.lr };
      for (const k of ['prompt', 'attention', 'bank', 'memory'] as const) {
        if (k in raw.lr) lr[k] = num(raw.lr, k, `${field}.lr.${k}`, src, 0, JOB_RANGES.lr);
      }
    } else
      throw new JobConfigError(`${field}.lr`, 'expected a number or {prompt, attention, bank, memory}', src);
  }
  let mixing = base.mixing;
  if ('mixing' in raw) {
    if (!isObj(raw.mixing)) throw new JobConfigError(`${field}.mixing`, 'expected {cap?, temperature?}', src);
    checkKeys(raw.mixing, ['cap', 'temperature'], `${field}.mixing`, src);
    mixing = {
      ...(raw.mixing.cap !== undefined && raw.mixing.cap !== null
        ? { cap: num(raw.mixing, 'cap', `${field}.mixing.cap`, src, 0, JOB_RANGES.mixingCap) }
        : {}),
      ...(raw.mixing.temperature !== undefined
        ? {
            temperature: num(
              raw.mixing,
              'temperature',
              `${field}.mixing.temperature`,
              src,
              1,
              JOB_RANGES.mixingTemperature,
            ),
          }
        : {}),
    };
  }
  let dropout = base.dropout;
  if ('dropout' in raw && raw.dropout !== null) {
    dropout = num(raw, 'dropout', `${field}.dropout`, src, 0, {
      min: 0,
      max: 1,
      why: "a dropout rate, or null for the checkpoint's",
    });
    if (dropout >= 1) {
      throw new JobConfigError(`${field}.dropout`, `expected a rate below 1 (or null), got ${dropout}`, src);
    }
  } else if ('dropout' in raw) dropout = null;
  const t: TrainSettings = {
    steps: num(raw, 'steps', `${field}.steps`, src, base.steps, JOB_RANGES.steps),
    batchSize: num(raw, 'batchSize', `${field}.batchSize`, src, base.batchSize, JOB_RANGES.batchSize),
    microBatchSize: num(
      raw,
      'microBatchSize',
      `${field}.microBatchSize`,
      src,
      base.microBatchSize,
      JOB_RANGES.microBatchSize,
    ),
    seed: num(raw, 'seed', `${field}.seed`, src, base.seed, JOB_RANGES.seed),
    dropout,
    lr,
    weightDecay: num(
      raw,
      'weightDecay',
      `${field}.weightDecay`,
      src,
      base.weightDecay,
      JOB_RANGES.weightDecay,
    ),
    warmupSteps: num(
      raw,
      'warmupSteps',
      `${field}.warmupSteps`,
      src,
      base.warmupSteps,
      JOB_RANGES.warmupSteps,
    ),
    clipNorm: num(raw, 'clipNorm', `${field}.clipNorm`, src, base.clipNorm, JOB_RANGES.clipNorm),
    evalEvery: num(raw, 'evalEvery', `${field}.evalEvery`, src, base.evalEvery, JOB_RANGES.evalEvery),
    evalExamples: num(
      raw,
      'evalExamples',
      `${field}.evalExamples`,
      src,
      base.evalExamples,
      JOB_RANGES.evalExamples,
    ),
    evalBatchSize: num(
      raw,
      'evalBatchSize',
      `${field}.evalBatchSize`,
      src,
      base.evalBatchSize,
      JOB_RANGES.evalBatchSize,
    ),
    evalMode: oneOf(raw, 'evalMode', `${field}.evalMode`, src, base.evalMode, EVAL_MODES),
    evalAtStart: bool(raw, 'evalAtStart', `${field}.evalAtStart`, src, base.evalAtStart),
    mixing,
  };
  if (t.warmupSteps >= t.steps && t.warmupSteps > 0) {
    throw new JobConfigError(
      `${field}.warmupSteps`,
      `must be below steps (${t.steps}); the rate would never decay`,
      src,
    );
  }
  return t;
}

function stringList(v: unknown, field: string, src: string): string[] {
  if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== 'string')) {
    throw new JobConfigError(field, 'expected a non-empty list of task names', src);
  }
  return v as string[];
}

/** A stage's `eval` block: `{tasks?: [...]}`; the tasks default to the stage's own, and may not repeat. */
function parseEvalTasks(raw: unknown, stageTasks: readonly string[], field: string, src: string): string[] {
  if (raw === undefined) return [...stageTasks];
  if (!isObj(raw)) throw new JobConfigError(field, 'expected {"tasks": [TASK, ...]}', src);
  checkKeys(raw, ['tasks'], field, src);
  if (raw.tasks === undefined) return [...stageTasks];
  const tasks = stringList(raw.tasks, `${field}.tasks`, src);
  const seen = new Set<string>();
  for (const t of tasks) {
    if (seen.has(t)) throw new JobConfigError(`${field}.tasks`, `task '${t}' is listed twice`, src);
    seen.add(t);
  }
  return tasks;
}

/**
 * Parses a job config object. `baseDir` resolves relative paths (the config file's folder).
 * A single-stage job may put `method`, `tasks` and `train` at the top level instead of `stages`.
 */
export function parseJobConfig(raw: unknown, opts: { source?: string; baseDir?: string } = {}): JobConfig {
  const src = opts.source ?? 'job config';
  const base = opts.baseDir ?? process.cwd();
  if (!isObj(raw)) throw new JobConfigError('(root)', 'expected a JSON object', src);
  checkKeys(
    raw,
    [
      'jobId',
      'backbone',
      'data',
      'maxSourceLength',
      'maxTargetLength',
      'stages',
      'method',
      'tasks',
      'train',
      'eval',
    ],
    '',
    src,
  );
  let backbone: JobConfig['backbone'];
  if (typeof raw.backbone === 'string') {
    const dir = path.resolve(base, raw.backbone);
    backbone = { checkpoint: dir, tokenizer: dir };
  } else if (isObj(raw.backbone) && typeof raw.backbone.checkpoint === 'string') {
    checkKeys(raw.backbone, ['checkpoint', 'tokenizer'], 'backbone', src);
    const ck = path.resolve(base, raw.backbone.checkpoint);
    const tk = typeof raw.backbone.tokenizer === 'string' ? path.resolve(base, raw.backbone.tokenizer) : ck;
    backbone = { checkpoint: ck, tokenizer: tk };
  } else {
    throw new JobConfigError('backbone', 'expected a model folder path or {checkpoint, tokenizer?}', src);
  }
  let data: JobConfig['data'];
  if (!isObj(raw.data)) throw new JobConfigError('data', 'expected {"suite": "demo"} or {"root": DIR}', src);
  if (raw.data.suite !== undefined) {
    checkKeys(raw.data, ['suite', 'seed'], 'data', src);
    if (raw.data.suite !== 'demo')
      throw new JobConfigError(
        'data.suite',
        `unknown suite ${JSON.stringify(raw.data.suite)}; the built-in one is "demo"`,
        src,
      );
    data = {
      suite: 'demo',
      ...(raw.data.seed !== undefined
        ? { seed: num(raw.data, 'seed', 'data.seed', src, 0, JOB_RANGES.seed) }
        : {}),
    };
  } else if (typeof raw.data.root === 'string') {
    checkKeys(raw.data, ['root', 'onMalformed'], 'data', src);
    const om = raw.data.onMalformed ?? 'error';
    if (om !== 'error' && om !== 'skip')
      throw new JobConfigError('data.onMalformed', 'expected "error" or "skip"', src);
    data = { root: path.resolve(base, raw.data.root), onMalformed: om };
  } else {
    throw new JobConfigError('data', 'expected {"suite": "demo"} or {"root": DIR}', src);
  }
  const topTrain = parseTrain(raw.train, DEFAULT_TRAIN, 'train', src);
  let rawStages: unknown[];
  if (raw.stages !== undefined) {
    if (raw.method !== undefined || raw.tasks !== undefined || raw.eval !== undefined) {
      throw new JobConfigError(
        'stages',
        'give either stages or a top-level method/tasks/eval, not both',
        src,
      );
    }
    if (!Array.isArray(raw.stages) || raw.stages.length === 0)
      throw new JobConfigError('stages', 'expected a non-empty list', src);
    rawStages = raw.stages;
  } else {
    rawStages = [
      {
        name: 'main',
        method: raw.method,
        tasks: raw.tasks,
        ...(raw.eval !== undefined ? { eval: raw.eval } : {}),
      },
    ];
  }
  const names = new Set<string>();
  const stages = rawStages.map((s, i): StageConfig => {
    const f = `stages[${i}]`;
    if (!isObj(s)) throw new JobConfigError(f, 'expected an object', src);
    checkKeys(s, ['name', 'method', 'tasks', 'train', 'eval'], f, src);
    const name = typeof s.name === 'string' ? s.name : `stage${i}`;
    if (names.has(name)) throw new JobConfigError(`${f}.name`, `duplicate stage name '${name}'`, src);
    names.add(name);
    if (!isObj(s.method) || typeof s.method.name !== 'string') {
      throw new JobConfigError(`${f}.method`, 'expected {"name": METHOD, ...options}', src);
    }
    const { name: methodName, ...options } = s.method;
    let factory: ReturnType<typeof methodFactory>;
    let methodConfig: unknown;
    try {
      factory = methodFactory(methodName as string);
      methodConfig = factory.parseConfig(options);
    } catch (err) {
      throw new JobConfigError(`${f}.method`, (err as Error).message, src);
    }
    const tasks = stringList(s.tasks, `${f}.tasks`, src);
    const evalTasks = parseEvalTasks(s.eval, tasks, `${f}.eval`, src);
    const heldOut = evalTasks.filter((t) => !tasks.includes(t));
    if (heldOut.length > 0 && !(factory.servesUnseenTasks?.(methodConfig) ?? false)) {
      throw new JobConfigError(
        `${f}.eval.tasks`,
        `held-out task(s) ${heldOut.join(', ')} are not among the stage's tasks, and ${methodName} with this ` +
          'config keeps per-task tensors, so it cannot run a task it was not trained on (use a shared prompt, ' +
          'e.g. spt with sharedPrompt: true, or evaluate only the stage tasks)',
        src,
      );
    }
    // A copy: parseTrain hands back its (shared, possibly frozen) base when the stage has no train block.
    const train = { ...parseTrain(s.train, topTrain, `${f}.train`, src) };
    // A field neither train block sets takes the method's own default (its authors' setting) before the job-wide one.
    const decaySet = [raw.train, s.train].some((t) => isObj(t) && t.weightDecay !== undefined);
    const methodDecay = factory.trainDefaults?.weightDecay;
    if (!decaySet && methodDecay !== undefined) train.weightDecay = methodDecay;
    return {
      name,
      method: s.method as StageConfig['method'],
      tasks,
      train,
      eval: { tasks: evalTasks },
    };
  });
  return {
    jobId: typeof raw.jobId === 'string' ? raw.jobId : 'job',
    backbone,
    data,
    maxSourceLength: num(raw, 'maxSourceLength', 'maxSourceLength', src, 256, JOB_RANGES.maxSourceLength),
    maxTargetLength: num(
      raw,
      'maxTargetLength',
      'maxTargetLength',
      src,
      DEFAULT_MAX_TARGET_LENGTH,
      JOB_RANGES.maxTargetLength,
    ),
    stages,
  };
}

export function readJobConfig(file: string): JobConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new JobConfigError('(file)', `cannot read it (${(err as Error).message})`, file);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new JobConfigError('(file)', `not valid JSON (${(err as Error).message})`, file);
  }
  return parseJobConfig(raw, { source: file, baseDir: path.dirname(path.resolve(file)) });
}

/** The bank attachment that records the resolved job a version was trained by (paths absolute, defaults filled). */
export const JOB_ATTACHMENT = 'job.json';

/** The resolved job as JSON; `parseJobConfig` reads it back to the same config. */
export function encodeJobConfig(job: JobConfig): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(job, null, 2)}\n`);
}
