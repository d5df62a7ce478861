/**
 * Do the methods learn? Trains prompt tuning, ATTEMPT-m, TPT and SPT on the demo suite's TARGET tasks with the
 * frozen demo backbone, and prints per target task each method's TEST score against chance (chanceLevel) and
 * against the untrained model (the method's initial parameters, evaluated before its target stage trains), plus
 * the training wall time. The trainer selects the best step on validation; the table is on the test split.
 *
 *   npm run bench -- methods [--steps 150] [--methods pt,attempt,tpt,spt] [--eval-mode generate|rank] [--json]
 *
 * `--eval-mode` is how validation (step selection) and the test scores predict a label (see EvalMode): 'generate',
 * the job default and the papers' way, or 'rank' (label scoring), which the tables in docs/methods.md used.
 *
 * Budget: every method gets the same target stage (same steps, batch, prompt learning rate, validation). ATTEMPT,
 * TPT and SPT also get a source stage of the same number of steps over the six source tasks, because that is what
 * they are (transfer from sources): source prompts by prompt tuning, TPT's token bank, SPT's memory (see
 * docs/methods.md).
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../src/backend/index.js';
import { type JobConfig, parseJobConfig } from '../src/config/job-config.js';
import { demoBackboneDir } from '../src/config/paths.js';
import { chanceLevel, DEMO_TASKS, generateDemoSuite } from '../src/data/demo/index.js';
import type { PromptMethod } from '../src/methods/index.js';
import { loadT5Model } from '../src/model/load-t5.js';
import type { T5Model } from '../src/model/t5/index.js';
import type { TensorMap } from '../src/model/tensor-map.js';
import { loadTokenizer, type Tokenizer } from '../src/model/tokenizer/index.js';
import { ExampleEncoder } from '../src/train/batching.js';
import { EVAL_MODES, type EvalMode, evaluateTask } from '../src/train/evaluate.js';
import { formatDuration, type ProgressSink } from '../src/train/progress.js';
import { createStageMethod, methodTensors, trainerOptions } from '../src/train/run-job.js';
import { loadTrainTasks } from '../src/train/task-source.js';
import { Trainer, type TrainTask } from '../src/train/trainer.js';

const SOURCES = DEMO_TASKS.filter((t) => t.role === 'source').map((t) => t.name);
const TARGETS = DEMO_TASKS.filter((t) => t.role === 'target').map((t) => t.name);
const METHODS = ['pt', 'attempt', 'tpt', 'spt'] as const;
type MethodKey = (typeof METHODS)[number];

interface Budget {
  steps: number;
  batchSize: number;
  lr: number;
  promptLength: number;
  evalExamples: number;
  evalMode: EvalMode;
  seed: number;
  /** The backbone's training dropout; null: the checkpoint's dropout_rate. */
  dropout: number | null;
}

/** Each method's stages; the last one trains on the target tasks and is the one measured. */
function methodStages(key: MethodKey, b: Budget): Record<string, unknown>[] {
  const train = (lr: Record<string, number>) => ({
    steps: b.steps,
    batchSize: b.batchSize,
    microBatchSize: b.batchSize,
    seed: b.seed,
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
    case 'attempt':
      return [
        {
          name: 'sources',
          method: { name: 'prompt-tuning', perTask: true, promptLength: n },
          tasks: SOURCES,
          train: train({ prompt: b.lr }),
        },
        {
          name: 'targets',
          method: {
            name: 'attempt',
            multiTask: true,
            promptLength: n,
            attentionDim: 16,
            sources: SOURCES.map((s) => `prompt.${s}`),
          },
          tasks: TARGETS,
          train: train({ prompt: b.lr, attention: 0.05 }),
        },
      ];
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
    case 'spt': {
      const spt = { memorySlots: 8, memoryLength: 4, topK: 2, promptLength: n, sharedPrompt: true };
      return [
        {
          name: 'memory',
          method: { name: 'spt', ...spt },
          tasks: SOURCES,
          train: train({ prompt: b.lr, memory: b.lr }),
        },
        {
          name: 'targets',
          method: { name: 'spt', ...spt, memoryFrom: 'memory', keysFrom: 'keys', promptFrom: 'prompt' },
          tasks: TARGETS,
          train: train({ prompt: b.lr, memory: b.lr }),
        },
      ];
    }
  }
}

function methodJob(key: MethodKey, backbone: string, b: Budget): JobConfig {
  return parseJobConfig(
    {
      jobId: `bench-${key}`,
      backbone,
      data: { suite: 'demo' },
      maxSourceLength: 64,
      maxTargetLength: 8,
      stages: methodStages(key, b),
    },
    { source: `bench methods (${key})` },
  );
}

function testScores(
  model: T5Model,
  method: PromptMethod,
  encoder: ExampleEncoder,
  tasks: readonly TrainTask[],
  mode: EvalMode,
  maxNewTokens: number,
): TestScores {
  const out: TestScores = { scores: {}, invalid: {}, samples: {} };
  for (const t of tasks) {
    const r = evaluateTask(
      model,
      method,
      encoder,
      { name: t.name, spec: t.spec, examples: t.test ?? [] },
      { batchSize: 50, maxExamples: 0, maxNewTokens, mode, split: 'test' },
    );
    out.scores[t.name] = r.score;
    out.invalid[t.name] = r.invalid;
    out.samples[t.name] = r.predictions.slice(0, 5);
  }
  return out;
}

/** Test-split scores per task, how many predictions were not a label (generation only), and the first five. */
interface TestScores {
  scores: Record<string, number>;
  invalid: Record<string, number>;
  samples: Record<string, string[]>;
}

interface MethodResult {
  method: MethodKey;
  untrained: Record<string, number>;
  trained: Record<string, number>;
  /** Test predictions that were not a label string (0 under label scoring), untrained and trained. */
  invalidUntrained: Record<string, number>;
  invalidTrained: Record<string, number>;
  /** The trained method's first five test predictions per task. */
  samples: Record<string, string[]>;
  /** Validation average of the selected step and which step it was. */
  validation: { step: number; average: number } | undefined;
  /** Wall time of each stage's training (evaluations included), seconds. */
  stageSeconds: Record<string, number>;
  trainSeconds: number;
}

/** Runs a method's stages like runJob, measuring the last stage on test before and after it trains. */
function runMethod(
  key: MethodKey,
  job: JobConfig,
  model: T5Model,
  tokenizer: Tokenizer,
  progress: ProgressSink,
): MethodResult {
  const encoder = new ExampleEncoder(tokenizer, {
    maxSourceLength: job.maxSourceLength,
    maxTargetLength: job.maxTargetLength,
  });
  let inputs: TensorMap = new Map();
  const stageSeconds: Record<string, number> = {};
  let result: Omit<MethodResult, 'stageSeconds' | 'trainSeconds'> | undefined;
  job.stages.forEach((stage, i) => {
    const last = i === job.stages.length - 1;
    const tasks = loadTrainTasks(job.data, stage.tasks);
    const method = createStageMethod(stage, model, inputs, job.maxSourceLength);
    try {
      const mode = stage.train.evalMode;
      const untrained = last
        ? testScores(model, method, encoder, tasks, mode, job.maxTargetLength)
        : undefined;
      progress.log(`${key}: stage '${stage.name}' (${stage.method.name}) on ${stage.tasks.join(', ')}`);
      const t0 = performance.now();
      const r = new Trainer(
        model,
        method,
        encoder,
        tasks,
        trainerOptions(stage, progress, job.maxTargetLength),
      ).run();
      stageSeconds[stage.name] = (performance.now() - t0) / 1000;
      // Evaluate (and hand on) the validation-selected parameters, not the last step's.
      for (const p of method.params) {
        const best = r.bestParams.get(p.name)!;
        tf.tidy(() => p.variable.assign(tf.tensor(best, p.variable.shape, 'float32')));
      }
      if (last) {
        const trained = testScores(model, method, encoder, tasks, mode, job.maxTargetLength);
        result = {
          method: key,
          untrained: untrained!.scores,
          trained: trained.scores,
          invalidUntrained: untrained!.invalid,
          invalidTrained: trained.invalid,
          samples: trained.samples,
          validation: r.best ? { step: r.best.step, average: r.best.average } : undefined,
        };
      }
      inputs = new Map([...inputs, ...methodTensors(method, r.bestParams)]);
    } finally {
      method.dispose();
    }
  });
  const trainSeconds = Object.values(stageSeconds).reduce((a, b) => a + b, 0);
  return { ...result!, stageSeconds, trainSeconds };
}

const quietProgress = (enabled: boolean): ProgressSink => ({
  update: () => {},
  log: (line) => {
    if (enabled) process.stderr.write(`${line}\n`);
  },
  done: () => {},
});

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      steps: { type: 'string', default: '150' },
      methods: { type: 'string', default: METHODS.join(',') },
      lr: { type: 'string', default: '0.3' },
      'prompt-length': { type: 'string', default: '10' },
      'eval-examples': { type: 'string', default: '100' },
      'eval-mode': { type: 'string', default: 'generate' },
      seed: { type: 'string', default: '42' },
      dropout: { type: 'string' },
      backbone: { type: 'string' },
      backend: { type: 'string', default: 'wasm' },
      json: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(
      'npm run bench -- methods [--steps 150] [--methods pt,attempt,tpt,spt] [--lr 0.3] [--prompt-length 10]\n' +
        "                         [--eval-examples 100] [--eval-mode generate|rank] [--seed 42] [--dropout RATE (default: the checkpoint's)]\n" +
        '                         [--backbone DIR] [--backend wasm] [--json] [--quiet]',
    );
    return;
  }
  const keys = values.methods.split(',').map((m) => m.trim());
  for (const k of keys) {
    if (!(METHODS as readonly string[]).includes(k))
      throw new Error(`--methods: unknown method '${k}'; known: ${METHODS.join(', ')}`);
  }
  const evalMode = values['eval-mode'] as EvalMode;
  if (!EVAL_MODES.includes(evalMode)) {
    throw new Error(`--eval-mode: unknown mode '${evalMode}'; known: ${EVAL_MODES.join(', ')}`);
  }
  const budget: Budget = {
    steps: Number.parseInt(values.steps, 10),
    batchSize: 32,
    lr: Number(values.lr),
    promptLength: Number.parseInt(values['prompt-length'], 10),
    evalExamples: Number.parseInt(values['eval-examples'], 10),
    evalMode,
    seed: Number.parseInt(values.seed, 10),
    dropout: values.dropout === undefined ? null : Number(values.dropout),
  };
  await selectBackend({ requested: values.backend, log: () => {} });
  const backbone = values.backbone ?? demoBackboneDir();
  const tokenizer = await loadTokenizer(backbone);
  const model = loadT5Model(backbone).model;
  const suite = generateDemoSuite({ tasks: TARGETS });
  const chance = Object.fromEntries(
    suite.tasks.map((t) => [t.def.name, chanceLevel(t.def.name, t.test)] as const),
  );
  const progress = quietProgress(!values.quiet && !values.json);
  const results: MethodResult[] = [];
  try {
    for (const key of keys as MethodKey[]) {
      const r = runMethod(key, methodJob(key, backbone, budget), model, tokenizer, progress);
      results.push(r);
      if (values.json) console.log(JSON.stringify({ ...r, chance, budget }));
      else progress.log(`${key}: done in ${formatDuration(r.trainSeconds)}`);
    }
  } finally {
    model.dispose();
  }
  if (values.json) return;
  const col = (s: string, w: number) => s.padEnd(w);
  console.log(
    `test accuracy (%), ${budget.steps} steps per stage, batch ${budget.batchSize}, prompt lr ${budget.lr}, ` +
      `prompt length ${budget.promptLength}, seed ${budget.seed}, labels predicted by ${budget.evalMode === 'rank' ? 'label scoring' : 'generation'} (--eval-mode ${budget.evalMode})`,
  );
  console.log(
    `${col('method', 10)}${TARGETS.map((t) => col(`${t} (chance ${chance[t]!.toFixed(1)})`, 32)).join('')}train time`,
  );
  for (const r of results) {
    const invalid = (t: string) =>
      budget.evalMode === 'generate' ? ` (${r.invalidUntrained[t]}/${r.invalidTrained[t]} invalid)` : '';
    const cells = TARGETS.map((t) =>
      col(`${r.untrained[t]!.toFixed(1)} -> ${r.trained[t]!.toFixed(1)}${invalid(t)}`, 32),
    );
    const stages = Object.entries(r.stageSeconds)
      .map(([s, v]) => `${s} ${v.toFixed(0)}s`)
      .join(' + ');
    console.log(`${col(r.method, 10)}${cells.join('')}${stages}`);
  }
  console.log(
    'cells: untrained (initial parameters) -> trained (best validation step), on the test split' +
      (budget.evalMode === 'generate'
        ? '; invalid: generated strings that are no label, untrained/trained'
        : ''),
  );
}
