/**
 * The task registry: built-in GLUE, SuperGLUE, SQuAD and demo tasks, plus any a caller registers. Lookup accepts
 * the canonical name ('sst2', 'superglue-cb') and common aliases (GLUE folder names like 'SST-2', bare SuperGLUE
 * names like 'cb').
 */
import { DEMO_TASK_SPECS } from '../demo/demo-tasks.js';
import { UnknownTaskError } from '../errors.js';
import { GLUE_TASKS } from './glue.js';
import { squad } from './squad.js';
import { SUPERGLUE_TASKS } from './superglue.js';
import type { TaskSpec } from './task-spec.js';

// biome-ignore lint/suspicious/noExplicitAny: the registry holds tasks of every row type
type AnyTaskSpec = TaskSpec<any>;

const registry = new Map<string, AnyTaskSpec>();

const ALIASES: Readonly<Record<string, string>> = {
  'sst-2': 'sst2',
  'sts-b': 'stsb',
  'mnli-m': 'mnli',
  boolq: 'superglue-boolq',
  cb: 'superglue-cb',
  copa: 'superglue-copa',
  multirc: 'superglue-multirc',
  record: 'superglue-record',
  wic: 'superglue-wic',
  wsc: 'superglue-wsc.fixed',
  'wsc.fixed': 'superglue-wsc.fixed',
  'superglue-wsc': 'superglue-wsc.fixed',
  squad_v1: 'squad',
};

/** Adds a task. A second task with the same name is a programming error. */
export function registerTask<Row>(spec: TaskSpec<Row>): void {
  if (registry.has(spec.name)) throw new Error(`task '${spec.name}' is already registered`);
  registry.set(spec.name, spec as AnyTaskSpec);
}

/** Canonical registered name for a name or alias, or undefined. */
export function resolveTaskName(name: string): string | undefined {
  if (registry.has(name)) return name;
  const lower = name.toLowerCase();
  if (registry.has(lower)) return lower;
  const alias = ALIASES[lower];
  return alias !== undefined && registry.has(alias) ? alias : undefined;
}

/** The task's spec; throws UnknownTaskError listing every known task. */
export function getTask(name: string): AnyTaskSpec {
  const canonical = resolveTaskName(name);
  if (canonical === undefined) throw new UnknownTaskError(name, listTasks());
  return registry.get(canonical) as AnyTaskSpec;
}

/** Registered task names, sorted. */
export function listTasks(): string[] {
  return [...registry.keys()].sort();
}

for (const spec of [...GLUE_TASKS, ...SUPERGLUE_TASKS, squad, ...DEMO_TASK_SPECS])
  registerTask(spec as AnyTaskSpec);
