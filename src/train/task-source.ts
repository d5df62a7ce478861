import * as fs from 'node:fs';
import * as path from 'node:path';
import { type JobConfig, JobConfigError, type StageConfig } from '../config/job-config.js';
import { DEMO_TASKS, generateDemoSuite } from '../data/demo/index.js';
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

/**
 * Checks at start-up, before any data or weights are loaded, that every task of every stage (trained or evaluated)
 * can be found: a task of the demo suite, or a known task with a folder under the data root. Every problem is
 * reported at once, naming its stage, so a missing folder for the last stage stops the job now rather than when
 * that stage starts. (The files inside a folder are read, and checked, when the stage loads them.)
 */
export function checkJobTasks(job: Pick<JobConfig, 'data' | 'stages'>, source = 'job config'): void {
  const problems: string[] = [];
  let field = '';
  for (const [i, stage] of job.stages.entries()) {
    for (const name of new Set([...stage.tasks, ...stage.eval.tasks])) {
      let problem: string | undefined;
      if ('suite' in job.data) {
        if (!DEMO_TASKS.some((t) => t.name === name))
          problem = `the demo suite has no task '${name}' (it has ${DEMO_TASKS.map((t) => t.name).join(', ')})`;
      } else {
        try {
          getTask(name);
          taskDir(job.data.root, name);
        } catch (e) {
          problem = (e as Error).message;
        }
      }
      if (problem) {
        field ||= `stages[${i}].tasks`;
        problems.push(`stage '${stage.name}': ${problem}`);
      }
    }
  }
  if (problems.length > 0) throw new JobConfigError(field, problems.join('; '), source);
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
