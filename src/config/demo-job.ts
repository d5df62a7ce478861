import { DEMO_TASKS } from '../data/demo/index.js';
import { type JobConfig, parseJobConfig } from './job-config.js';
import { demoBackboneDir } from './paths.js';

/**
 * The built-in demo job: ATTEMPT's two-stage pipeline on the demo suite with the shipped tiny backbone.
 * Stage 1 trains one prompt per source task (multi-task prompt tuning); stage 2 trains ATTEMPT-m on the
 * low-resource target tasks, attending over the stage-1 source prompts. Its validation scores are by label scoring
 * (`evalMode: 'rank'`, see below).
 */
export function demoJob(overrides: { steps?: number; seed?: number } = {}): JobConfig {
  const sources = DEMO_TASKS.filter((t) => t.role === 'source').map((t) => t.name);
  const targets = DEMO_TASKS.filter((t) => t.role === 'target').map((t) => t.name);
  // 300 updates per stage: at 100 the target prompts had not yet moved demo-dining (68 -> 48 at the last step,
  // seed 42); the whole job takes about a minute on 2 cores with the native backend.
  const steps = overrides.steps ?? 300;
  const train = {
    steps,
    batchSize: 32,
    microBatchSize: 16,
    seed: overrides.seed ?? 42,
    // Prompt lr 0.1, not the papers' 0.3: on this backbone 0.3 overshoots (prompt tuning, demo-dining, seeds 42 and 7,
    // 150 updates: 57 -> 65 and 62 -> 61 at 0.3; 57 -> 86 and 62 -> 89 at 0.1).
    lr: { prompt: 0.1, attention: 0.05 },
    warmupSteps: Math.min(10, Math.floor(steps / 5)),
    evalEvery: 0,
    // The whole validation split of a target (200): a score moves in steps of 1/evalExamples, and with 100 examples
    // the seed-to-seed noise of the earlier demo-count design (a few points) was as large as its gain.
    evalExamples: 200,
    // Label scoring: every prediction is a label, so the untrained -> trained line compares like with like. With
    // generation (the job default, the papers' way) the untrained target prompts mostly write no label at all
    // (demo-dining: 290 of 300 test predictions; docs/methods.md), so the line would show 2 -> 86 where label
    // scoring shows which label the prompts lean to before training. This job, as shipped (seed 42, 2 workers, native
    // backend, 69 s): demo-entail 48.5 -> 73, demo-dining 65.5 -> 86.5, demo-count 25.5 -> 90 (validation, 200
    // examples; seed 7: 48.5 -> 68.5, 53 -> 87, 13 -> 70; seed 1234: 48.5 -> 68.5, 70 -> 87.5, 38 -> 86.5).
    evalMode: 'rank' as const,
    // Score the untrained prompts too: the job ends with each task's score untrained -> trained.
    evalAtStart: true,
  };
  return parseJobConfig(
    {
      jobId: 'demo',
      backbone: demoBackboneDir(),
      data: { suite: 'demo' },
      maxSourceLength: 64,
      maxTargetLength: 8,
      stages: [
        {
          name: 'sources',
          method: { name: 'prompt-tuning', perTask: true, promptLength: 10 },
          tasks: sources,
          train,
        },
        {
          name: 'targets',
          method: {
            name: 'attempt',
            multiTask: true,
            promptLength: 10,
            attentionDim: 16,
            sources: sources.map((s) => `prompt.${s}`),
          },
          tasks: targets,
          train,
        },
      ],
    },
    { source: 'built-in demo job' },
  );
}
