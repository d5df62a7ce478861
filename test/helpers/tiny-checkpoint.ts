import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeTinyT5, type TinyT5Options, writeT5Checkpoint } from '../../src/model/checkpoint/index.js';

/**
 * Writes a tiny random T5 in the exact Hugging Face folder layout into a fresh temp folder, so tests load it
 * through the same code path a real t5-base takes. Returns the folder; the caller removes it.
 */
export function writeTinyCheckpoint(opts: TinyT5Options & { shardBytes?: number }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-t5-'));
  const { config, tensors } = makeTinyT5(opts);
  writeT5Checkpoint(dir, config, tensors, opts.shardBytes ? { shardBytes: opts.shardBytes } : {});
  return dir;
}
