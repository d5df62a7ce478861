/**
 * Generates the demo suite: every demo task's train/validation/test examples from one seed. Each task draws from
 * its own stream (seed, task name), so adding a task or changing another task's size leaves a task unchanged.
 * No source text appears twice within a task, across splits included, so evaluation never sees training inputs.
 */
import { rngFor } from '../rng.js';
import type { TaskExample } from '../tasks/task-spec.js';
import { DEMO_TASKS, type DemoRow, type DemoSizes, type DemoTaskDef, formatDemoRow } from './demo-tasks.js';

export const DEFAULT_DEMO_SEED = 20_240_601;

export interface DemoExample extends TaskExample {
  /** The task's fields by field name (what the JSONL file holds besides the label). */
  fields: Record<string, string>;
}

export interface DemoTaskData {
  def: DemoTaskDef;
  train: DemoExample[];
  validation: DemoExample[];
  test: DemoExample[];
}

export interface DemoSuite {
  seed: number;
  tasks: DemoTaskData[];
}

export interface DemoSuiteOptions {
  seed?: number;
  /** Override sizes of all sources or all targets (e.g. smaller for tests). */
  sourceSizes?: Partial<DemoSizes>;
  targetSizes?: Partial<DemoSizes>;
  /** Only these tasks (default all). */
  tasks?: readonly string[];
}

export function generateDemoTask(def: DemoTaskDef, seed: number, sizes: DemoSizes = def.sizes): DemoTaskData {
  const rng = rngFor(seed, 'demo', def.name);
  const seen = new Set<string>();
  const make = (split: keyof DemoSizes): DemoExample[] => {
    const out: DemoExample[] = [];
    const n = sizes[split];
    let attempts = 0;
    while (out.length < n) {
      if (++attempts > 50 * n + 1000) {
        throw new Error(
          `demo task ${def.name}: could not draw ${n} distinct ${split} examples; lower its size`,
        );
      }
      const sample = def.generate(rng);
      const fields: Record<string, string> = {};
      for (const f of def.fields) fields[f.name] = sample.roles[f.role] as string;
      const row: DemoRow = { fields, label: def.labelWords?.[sample.label] ?? sample.label };
      const ex = formatDemoRow(def, row);
      if (seen.has(ex.source)) continue;
      seen.add(ex.source);
      out.push({ task: def.name, ref: `demo:${def.name}/${split}#${out.length}`, ...ex, fields });
    }
    return out;
  };
  return { def, train: make('train'), validation: make('validation'), test: make('test') };
}

export function generateDemoSuite(options: DemoSuiteOptions = {}): DemoSuite {
  const seed = options.seed ?? DEFAULT_DEMO_SEED;
  const wanted = options.tasks ? new Set(options.tasks) : undefined;
  const tasks = DEMO_TASKS.filter((d) => !wanted || wanted.has(d.name)).map((def) => {
    const override = def.role === 'source' ? options.sourceSizes : options.targetSizes;
    return generateDemoTask(def, seed, { ...def.sizes, ...override });
  });
  return { seed, tasks };
}

/** Names of the demo suite's source and target tasks. */
export function demoTaskNames(role?: 'source' | 'target'): string[] {
  return DEMO_TASKS.filter((d) => role === undefined || d.role === role).map((d) => d.name);
}
