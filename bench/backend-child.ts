/**
 * Runs one bench on one backend in a child process (a process holds one tfjs backend) and returns its last JSON
 * line, or why it produced none. Children get the malloc settings the workers get (MALLOC_ENV), so the backends
 * are compared as they run in training.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MALLOC_ENV } from '../src/cli/worker-env.js';

export type ChildResult = { line: string } | { skipped: string };

export function runBenchOnBackend(bench: string, backend: string, args: string[]): ChildResult {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const r = spawnSync(process.execPath, [main, bench, '--backend', backend, ...args, '--json'], {
    encoding: 'utf8',
    env: { ...process.env, ...MALLOC_ENV, PROMPTMESH_BACKEND: '' },
  });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.status === 0 && line.startsWith('{')) return { line };
  const why = r.stderr
    .trim()
    .split('\n')
    .filter((l) => /Error|cannot/.test(l))[0];
  return { skipped: why ?? `exit ${r.status}` };
}
