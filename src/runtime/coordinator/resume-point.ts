import type { JobConfig } from '../../config/job-config.js';
import type { RuntimeManifest } from '../runtime-bank.js';

/** Where a coordinator continues a job: the stage and step to run next, and the versions it builds on. */
export interface ResumePoint {
  stage: number;
  /** Committed steps of `stage` (the next step to run). */
  step: number;
  /** The version the job continues from (the parent of the next one), and its step. */
  head: string | null;
  headStep: number;
  /** The version whose tensors are the stage's inputs (earlier stages' outputs), if any. */
  stageInputs: string | undefined;
}

/**
 * The resume point a version gives (none: the job's start). A version ends its stage when it is the stage's final
 * one and the stage has no more steps configured (a larger --steps continues a finished stage from its last
 * version); `stage` past the last one means the job is complete.
 */
export function resumePoint(job: JobConfig, head: RuntimeManifest | undefined): ResumePoint {
  if (!head) return { stage: 0, step: 0, head: null, headStep: -1, stageInputs: undefined };
  const extra = head.extra ?? {};
  const stage = Number(extra.stage ?? 0);
  const stageSteps = job.stages[stage]?.train.steps ?? 0;
  if (extra.final === true && head.step >= stageSteps) {
    return { stage: stage + 1, step: 0, head: head.id, headStep: head.step, stageInputs: head.id };
  }
  return {
    stage,
    step: head.step,
    head: head.id,
    headStep: head.step,
    stageInputs: (extra.inputs as string | null | undefined) ?? undefined,
  };
}
