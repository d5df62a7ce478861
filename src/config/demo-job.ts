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
  const steps = overrides.steps ?? 60;
  const train = {
    steps,
    batchSize: 32,
    microBatchSize: 16,
    seed: overrides.seed ?? 42,
    lr: { prompt: 0.3, attention: 0.05 },
    warmupSteps: Math.min(10, Math.floor(steps / 5)),
    evalEvery: 0,
    evalExamples: 100,
    // Label scoring, not the papers' generation (the job default): 60 updates on this 380k-parameter backbone do not
    // teach the target prompts to write the new label words, so generation scores demo-dining 0.0 with all 100
    // predictions invalid ('.', 'this is', 'cooking'), where label scoring shows which label the prompts lean to
    // (63.0; chance 50). The pretrained source skills (demo-sentiment 81.0) are the same either way.
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
