/**
 * Chance levels: what a model that guesses scores, to read results against.
 * - demo tasks: the mean, over the examples, of the probability that a uniform guess is right (1 / #labels for
 *   classification, 1 / #distinct context words for extractive QA, 1 / 21 for the number answers);
 * - registered classification tasks: 100 / #labels (a uniform guess, whatever the class balance);
 * - the majority baseline (always answer the most frequent target) is reported separately.
 * All on the 0-100 scale of the metrics.
 */
import { getTask } from '../tasks/registry.js';
import { demoTaskDef } from './demo-tasks.js';
import type { DemoExample } from './suite.js';

export function chanceLevel(
  task: string,
  examples: ReadonlyArray<Pick<DemoExample, 'target'> & Partial<Pick<DemoExample, 'fields'>>>,
): number {
  const def = demoTaskDef(task);
  if (def) {
    if (examples.length === 0) return 0;
    let sum = 0;
    for (const ex of examples) {
      const roles: Record<string, string> = {};
      for (const f of def.fields) roles[f.role] = ex.fields?.[f.name] ?? '';
      sum += def.chance(roles, ex.target);
    }
    return (100 * sum) / examples.length;
  }
  const spec = getTask(task);
  if (!spec.labels) {
    throw new RangeError(`task '${task}' generates free text: its chance level depends on the answer space`);
  }
  return 100 / spec.labels.length;
}

/** Percentage of examples whose target is the most frequent target. */
export function majorityBaseline(examples: readonly { target: string }[]): number {
  if (examples.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const e of examples) counts.set(e.target, (counts.get(e.target) ?? 0) + 1);
  return (100 * Math.max(...counts.values())) / examples.length;
}
