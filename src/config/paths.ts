import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: this file runs as dist/src/config/paths.js, three folders below it. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The shipped demo backbone (tiny T5 + SentencePiece tokenizer pretrained on the demo suite's text). */
export function demoBackboneDir(): string {
  return path.join(PACKAGE_ROOT, 'assets', 'demo-backbone');
}
