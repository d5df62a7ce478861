/**
 * Writes the demo suite as JSONL, one folder per task with train/validation/test files, in the layout the task
 * registry reads back (`loadTask('demo-nli', dir + '/demo-nli')`): each line is the task's fields by name, the
 * label word and an index.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DemoSuite } from './suite.js';

export function writeDemoSuite(dir: string, suite: DemoSuite): string[] {
  const written: string[] = [];
  for (const t of suite.tasks) {
    const taskDir = path.join(dir, t.def.name);
    fs.mkdirSync(taskDir, { recursive: true });
    for (const split of ['train', 'validation', 'test'] as const) {
      const lines = t[split].map((ex, idx) => JSON.stringify({ ...ex.fields, label: ex.target, idx }));
      const file = path.join(taskDir, `${split}.jsonl`);
      fs.writeFileSync(file, lines.length > 0 ? `${lines.join('\n')}\n` : '');
      written.push(file);
    }
  }
  return written;
}
