/** Temp-folder helpers for the data tests: write a task folder from inline file contents. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export function tempRoot(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
}

export function writeTaskDir(root: string, name: string, files: Record<string, string>): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), text);
  return dir;
}

export function jsonl(rows: readonly unknown[]): string {
  return `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;
}

export function removeRoot(root: string): void {
  fs.rmSync(root, { recursive: true, force: true });
}
