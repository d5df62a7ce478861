/**
 * A bank version as a live method: which stage of a job config made it (the version records only its method
 * config's hash and the stage's name), and the method rebuilt from the version's own tensors.
 */

import { configHash, type Manifest } from '../bank/index.js';
import type { JobConfig, StageConfig } from '../config/job-config.js';
import { methodFactory, type PromptMethod } from '../methods/index.js';
import type { T5Model } from '../model/t5/index.js';
import type { HostTensor } from '../model/tensor-map.js';
import { createStageMethod } from '../train/run-job.js';

/** The version cannot be matched to a stage of the job config (or was made with another method config). */
export class VersionStageError extends Error {
  override name = 'VersionStageError';
}

/** The hash a bank version records for the method config it was trained with. */
export function stageConfigHash(stage: StageConfig): string {
  return configHash(stage.method);
}

/**
 * The stage of `job` that made version `m`: `stageName` when given, else the stage the version names
 * (`extra.stageName`, written by the workers), else the one stage whose method config hashes to the version's.
 * A stage whose method config hashes otherwise is refused (the tensors would be read with the wrong config),
 * except for versions that record no config (imports, compositions), which are checked by tensor shapes only.
 */
export function stageOfVersion(
  job: JobConfig,
  m: Manifest,
  opts: { stageName?: string; source?: string } = {},
): { stage: StageConfig; index: number } {
  const where = opts.source ?? `job '${job.jobId}'`;
  const names = job.stages.map((s) => s.name).join(', ');
  const recorded = typeof m.extra?.stageName === 'string' ? (m.extra.stageName as string) : undefined;
  const wanted = opts.stageName ?? recorded;
  let index: number;
  if (wanted !== undefined) {
    index = job.stages.findIndex((s) => s.name === wanted);
    if (index < 0) {
      throw new VersionStageError(
        `${where} has no stage '${wanted}' (${opts.stageName ? 'asked for with --stage' : `version ${m.id.slice(0, 12)} was trained by it`}); its stages: ${names}. ` +
          'Pass the job config the version was trained with (--config), or --stage NAME',
      );
    }
  } else {
    const hits = job.stages.flatMap((s, i) => (stageConfigHash(s) === m.configHash ? [i] : []));
    if (hits.length !== 1) {
      throw new VersionStageError(
        `cannot tell which stage of ${where} made version ${m.id.slice(0, 12)} (method ${m.method}); pass --stage NAME (stages: ${names})`,
      );
    }
    index = hits[0]!;
  }
  const stage = job.stages[index]!;
  const unknownConfig = m.configHash === configHash(null);
  if (!unknownConfig && stageConfigHash(stage) !== m.configHash) {
    throw new VersionStageError(
      `version ${m.id.slice(0, 12)} was trained with another method config than stage '${stage.name}' of ${where} ` +
        `(config hash ${m.configHash} vs ${stageConfigHash(stage)}); pass the job config it was trained with (--config)`,
    );
  }
  if (!unknownConfig && m.method !== stage.method.name) {
    throw new VersionStageError(
      `version ${m.id.slice(0, 12)} holds a ${m.method} method but stage '${stage.name}' of ${where} trains ${stage.method.name}`,
    );
  }
  return { stage, index };
}

/**
 * The stage's method with every tensor taken from the version (MethodContext.restore): trainable and frozen ones
 * (ATTEMPT's source prompts, TPT's bank) alike, so nothing depends on earlier stages or initialisers.
 */
export function methodFromVersion(
  job: JobConfig,
  stage: StageConfig,
  model: T5Model,
  tensors: ReadonlyMap<string, HostTensor>,
): PromptMethod {
  return createStageMethod(stage, model, new Map(), job.maxSourceLength, tensors);
}

/**
 * Tasks a method built for `stage` can run: its own tasks, plus the held-out tasks it was evaluated on when the
 * method serves unseen tasks (every tensor it applies is shared), or every task then when `anyTask`.
 */
export function servableTasks(stage: StageConfig): { tasks: string[]; anyTask: boolean } {
  const { name, ...options } = stage.method;
  const factory = methodFactory(name);
  const unseen = factory.servesUnseenTasks?.(factory.parseConfig(options)) ?? false;
  const tasks = [...stage.tasks, ...(unseen ? stage.eval.tasks.filter((t) => !stage.tasks.includes(t)) : [])];
  return { tasks, anyTask: unseen };
}
