/**
 * What identifies a backbone folder: the sha256 of its config.json and of every weight and tokenizer file. A bank
 * version records it (`extra.backbone`), so a version says exactly which frozen model it was trained on, wherever
 * that folder was mounted.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface BackboneIdentity {
  /** The folder as the job named it (for people; the digests are what identify it). */
  path: string;
  /** `sha256:<hex>` of config.json. */
  config: string;
  /** File name -> `sha256:<hex>`: weights (*.safetensors, *.bin) and tokenizer files, sorted by name. */
  files: Record<string, string>;
}

const IDENTIFYING = /(\.safetensors|\.bin|^spiece\.model|^tokenizer\.json|^tokenizer_config\.json)$/;

function fileDigest(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 22);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return `sha256:${h.digest('hex')}`;
}

/** Hashes the folder's files (streaming: about 1 s per GB). */
export function backboneIdentity(dir: string): BackboneIdentity {
  const files: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) {
    if (!IDENTIFYING.test(name)) continue;
    const p = path.join(dir, name);
    if (fs.statSync(p).isFile()) files[name] = fileDigest(p);
  }
  return { path: dir, config: fileDigest(path.join(dir, 'config.json')), files };
}
