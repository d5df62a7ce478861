import { PassThrough } from 'node:stream';
import { runCli } from '../../src/cli/main.js';

/** Runs a `promptmesh` command in this process, capturing its output (exit code as `runCli` returns it). */
export async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (d) => {
    o += d;
  });
  stderr.on('data', (d) => {
    e += d;
  });
  const code = await runCli(argv, { stdout, stderr });
  return { code, stdout: o, stderr: e };
}
