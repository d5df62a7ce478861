import * as fs from 'node:fs';
import * as path from 'node:path';
import type { JobConfig, StageConfig } from '../config/job-config.js';
import { generateDemoSuite } from '../data/demo/index.js';
import { loadTask } from '../data/load-task.js';
import { getTask } from '../data/tasks/registry.js';
import type { TrainTask } from './trainer.js';

/** GLUE's own folder names, for data roots laid out as the GLUE download script leaves them. */
const GLUE_DIRS: Record<string, string> = {
  cola: 'CoLA',
  sst2: 'SST-2',
  mrpc: 'MRPC',
  stsb: 'STS-B',
  qqp: 'QQP',
  mnli: 'MNLI',
  qnli: 'QNLI',
  rte: 'RTE',
  wnli: 'WNLI',
};

/** The folder holding a task's files under a data root: ROOT/<task>, ROOT/<GLUE name>, or ROOT/glue/<GLUE name>. */
export function taskDir(root: string, task: string): string {
  const glue = GLUE_DIRS[task];
  const bare = task.replace(/^superglue-/, '');
  const candidates = [task, bare, bare.toUpperCase(), ...(glue ? [glue, path.join('glue', glue)] : [])].map(
    (c) => path.join(root, c),
  );
  const hit = candidates.find((c) => fs.existsSync(c) && fs.statSync(c).isDirectory());
  if (!hit)
    throw new Error(`no folder for task '${task}' under ${root}; looked for ${candidates.join(', ')}`);
  return hit;
}

/** Loads the named tasks for a job: generated (demo suite) or read from files (GLUE/SuperGLUE/SQuAD). */
export function loadTrainTasks(data: JobConfig['data'], names: readonly string[]): TrainTask[] {
  if ('suite' in data) {
    const suite = generateDemoSuite({
      tasks: names,
      ...(data.seed !== undefined ? { seed: data.seed } : {}),
    });
    return names.map((name) => {
      const t = suite.tasks.find((x) => x.def.name === name);
      if (!t) throw new Error(`the demo suite has no task '${name}'`);
      return { name, spec: getTask(name), train: t.train, validation: t.validation, test: t.test };
    });
  }
  return names.map((name) => {
    const loaded = loadTask(name, taskDir(data.root, name), { onMalformed: data.onMalformed });
    return { name, spec: loaded.spec, train: loaded.train, validation: loaded.validation, test: loaded.test };
  });
}

/**
 * A stage's training tasks and the tasks it evaluates (its `eval.tasks`, held-out ones included), read in one
 * pass so a task in both is the same object.
 */
export function loadStageTasks(
  data: JobConfig['data'],
  stage: Pick<StageConfig, 'tasks' | 'eval'>,
): { train: TrainTask[]; eval: TrainTask[] } {
  const names = [...stage.tasks, ...stage.eval.tasks.filter((t) => !stage.tasks.includes(t))];
  const loaded = new Map(loadTrainTasks(data, names).map((t) => [t.name, t]));
  return {
    train: stage.tasks.map((t) => loaded.get(t)!),
    eval: stage.eval.tasks.map((t) => loaded.get(t)!),
  };
}
