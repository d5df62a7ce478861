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

/** Streams the file through sha256 (reads yield to the event loop between chunks). */
async function fileDigest(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** Hashes the folder's files, about 1 s per GB: start it early and await it where the identity is needed. */
export async function backboneIdentity(dir: string): Promise<BackboneIdentity> {
  const files: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) {
    if (!IDENTIFYING.test(name)) continue;
    const p = path.join(dir, name);
    if (fs.statSync(p).isFile()) files[name] = await fileDigest(p);
  }
  return { path: dir, config: await fileDigest(path.join(dir, 'config.json')), files };
}
