/**
 * Hugging Face T5ForConditionalGeneration checkpoint folders: `config.json` plus either `model.safetensors` or
 * `model.safetensors.index.json` with its shards, laid out the way transformers' `save_pretrained` writes them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  expectedT5TensorShapes,
  parseT5Config,
  type T5Config,
  T5ConfigError,
  t5ConfigJsonText,
  t5TensorAliases,
} from '../t5-config.js';
import {
  FLOAT_DTYPES,
  SafetensorsFormatError,
  SafetensorsReader,
  type SafetensorsTensor,
  writeFileAtomic,
  writeSafetensors,
} from './safetensors.js';

export const CONFIG_FILE = 'config.json';
export const SAFE_WEIGHTS_FILE = 'model.safetensors';
export const SAFE_WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
const SHARD_NAME = /^model-\d{5}-of-\d{5}\.safetensors$/;

export interface Float32Tensor {
  shape: number[];
  data: Float32Array;
}

export interface T5Checkpoint {
  config: T5Config;
  /** HF names -> float32 data, HF shapes ([out, in] for Linear weights), in transformers' registration order. */
  tensors: Map<string, Float32Tensor>;
  /** Weight files read, relative to the folder. */
  files: string[];
  /** Tensors in the files that a T5ForConditionalGeneration does not have; they were not loaded. */
  warnings: string[];
}

export interface LoadT5CheckpointOptions {
  /** Load (and check) only the tensors this accepts, e.g. `(n) => n === 'shared.weight'` for embeddings only. */
  include?: (name: string) => boolean;
  /**
   * Hands each tensor over as soon as it is read, instead of collecting them in `tensors` (which is then empty):
   * the caller moves it to the backend and drops it, so the whole checkpoint is never in JavaScript memory at once.
   * Everything is checked before the first tensor is read.
   */
  onTensor?: (name: string, tensor: Float32Tensor) => void;
}

/** The folder is not a usable T5 checkpoint; the message says which file/tensor and what to do. */
export class CheckpointFormatError extends Error {
  override name = 'CheckpointFormatError';
  constructor(
    message: string,
    readonly dir: string,
    readonly file?: string,
    readonly tensor?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const CONVERT_HINT =
  'convert it to safetensors with transformers: python -c "from transformers import T5ForConditionalGeneration as M; ' +
  "M.from_pretrained('IN').save_pretrained('OUT', safe_serialization=True)\" and point promptmesh at OUT";

/** Reads and validates only `config.json` of a checkpoint folder. */
export function readT5Config(dir: string): T5Config {
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (stat === undefined) throw new CheckpointFormatError(`${dir}: no such folder`, dir);
  if (!stat.isDirectory()) {
    throw new CheckpointFormatError(
      `${dir} is a file; a checkpoint is a folder holding ${CONFIG_FILE} and ${SAFE_WEIGHTS_FILE}`,
      dir,
    );
  }
  const file = path.join(dir, CONFIG_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CheckpointFormatError(
      `${file}: cannot read (${(e as Error).message}); a Hugging Face T5 folder has ${CONFIG_FILE} next to its weights`,
      dir,
      file,
      undefined,
      { cause: e },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointFormatError(
      `${file}: not valid JSON (${(e as Error).message})`,
      dir,
      file,
      undefined,
      {
        cause: e,
      },
    );
  }
  try {
    return parseT5Config(json, file);
  } catch (e) {
    if (e instanceof T5ConfigError)
      throw new CheckpointFormatError(e.message, dir, file, undefined, { cause: e });
    throw e;
  }
}

function exists(p: string): boolean {
  return fs.existsSync(p);
}

function noWeightsError(dir: string): CheckpointFormatError {
  const has = (f: string) => exists(path.join(dir, f));
  let what: string | undefined;
  if (has('pytorch_model.bin') || has('pytorch_model.bin.index.json'))
    what = 'PyTorch pickle weights (pytorch_model.bin)';
  else if (has('tf_model.h5')) what = 'TensorFlow weights (tf_model.h5)';
  else if (has('flax_model.msgpack')) what = 'Flax weights (flax_model.msgpack)';
  if (what !== undefined) {
    return new CheckpointFormatError(
      `${dir}: this folder has ${what} only; promptmesh reads safetensors (pickles can run code on load). ` +
        `Then ${CONVERT_HINT}`,
      dir,
    );
  }
  return new CheckpointFormatError(
    `${dir}: neither ${SAFE_WEIGHTS_FILE} nor ${SAFE_WEIGHTS_INDEX_FILE} is here; download the model's safetensors ` +
      'weights into this folder (e.g. huggingface-cli download <model> --include "*.json" "*.safetensors" --local-dir DIR)',
    dir,
  );
}

function readIndex(dir: string): Map<string, string> {
  const file = path.join(dir, SAFE_WEIGHTS_INDEX_FILE);
  const fail = (msg: string, cause?: unknown): never => {
    throw new CheckpointFormatError(
      `${file}: ${msg}`,
      dir,
      file,
      undefined,
      cause === undefined ? undefined : { cause },
    );
  };
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    return fail(`cannot read or parse (${(e as Error).message})`, e);
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    fail('has no "weight_map" object (tensor name -> shard file)');
  }
  const map = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '') fail(`weight_map["${name}"] must be a shard file name`);
    const s = shard as string;
    // Shards are plain files beside the index; anything else could make us read outside the folder.
    if (path.isAbsolute(s) || s.split(/[\\/]/).includes('..')) {
      fail(`weight_map["${name}"] = "${s}" points outside the checkpoint folder`);
    }
    map.set(name, s);
  }
  return map;
}

interface Located {
  reader: SafetensorsReader;
  file: string;
}

/**
 * Loads a T5 checkpoint folder into float32 arrays (F16/BF16/F64 weights are converted). Every tensor the
 * config implies must be present with exactly the implied shape; problems are collected and thrown together as
 * one CheckpointFormatError. Extra tensors only produce warnings; encoder/decoder.embed_tokens (and lm_head when
 * tied) are copies of shared.weight and are skipped as transformers does.
 */
export function loadT5Checkpoint(dir: string, opts: LoadT5CheckpointOptions = {}): T5Checkpoint {
  const config = readT5Config(dir);
  const include = opts.include ?? (() => true);
  const single = path.join(dir, SAFE_WEIGHTS_FILE);
  const indexFile = path.join(dir, SAFE_WEIGHTS_INDEX_FILE);

  let files: string[];
  let weightMap: Map<string, string> | undefined;
  // transformers prefers the single file when both are present, so do we.
  if (exists(single)) {
    files = [SAFE_WEIGHTS_FILE];
  } else if (exists(indexFile)) {
    weightMap = readIndex(dir);
    files = [...new Set(weightMap.values())].sort();
    const missing = files.filter((f) => !exists(path.join(dir, f)));
    if (missing.length > 0) {
      const detail = missing.map((f) => {
        const held = [...weightMap!].filter(([, s]) => s === f).map(([n]) => n);
        return `${f} (${held.length} tensors, e.g. ${held[0]})`;
      });
      throw new CheckpointFormatError(
        `${indexFile} lists ${missing.length} of ${files.length} shard files that are not in ${dir}: ` +
          `${detail.join('; ')}. The download is incomplete: fetch the missing shard files into the folder`,
        dir,
        path.join(dir, missing[0]!),
      );
    }
  } else {
    throw noWeightsError(dir);
  }

  const readers: SafetensorsReader[] = [];
  try {
    const located = new Map<string, Located>();
    const warnings: string[] = [];
    for (const f of files) {
      const full = path.join(dir, f);
      let r: SafetensorsReader;
      try {
        r = SafetensorsReader.open(full);
      } catch (e) {
        if (e instanceof SafetensorsFormatError) {
          throw new CheckpointFormatError(
            `${e.message}; re-download or re-export this file`,
            dir,
            full,
            e.tensor,
            {
              cause: e,
            },
          );
        }
        throw e;
      }
      readers.push(r);
      for (const name of r.names()) {
        if (weightMap !== undefined && weightMap.get(name) !== f) {
          // transformers only loads what the index maps to this shard.
          warnings.push(
            `${full}: tensor "${name}" is not mapped to this file by ${SAFE_WEIGHTS_INDEX_FILE}; ignored`,
          );
          continue;
        }
        located.set(name, { reader: r, file: full });
      }
    }
    if (weightMap !== undefined) {
      for (const [name, shard] of weightMap) {
        if (!located.has(name)) {
          throw new CheckpointFormatError(
            `${indexFile} maps tensor "${name}" to ${shard}, but that file has no such tensor; the index and shards ` +
              'come from different exports: download them again together',
            dir,
            path.join(dir, shard),
            name,
          );
        }
      }
    }

    const expected = expectedT5TensorShapes(config);
    const aliases = t5TensorAliases(config);
    const problems: string[] = [];
    const missing: string[] = [];
    const sources = new Map<string, Located & { stored: string }>();
    for (const [name, shape] of expected) {
      if (!include(name)) continue;
      let stored = name;
      let loc = located.get(name);
      if (loc === undefined) {
        // Some exporters keep only an alias of the shared embedding.
        for (const [alias, target] of aliases) {
          if (target === name && located.has(alias)) {
            stored = alias;
            loc = located.get(alias);
            warnings.push(`${loc!.file}: "${name}" is missing; using its tied copy "${alias}"`);
            break;
          }
        }
      }
      if (loc === undefined) {
        missing.push(name);
        continue;
      }
      const info = loc.reader.info(stored);
      if (info.shape.length !== shape.length || info.shape.some((s, i) => s !== shape[i])) {
        problems.push(
          `${loc.file}: tensor "${stored}" has shape [${info.shape.join(', ')}] but ${CONFIG_FILE} implies ` +
            `[${shape.join(', ')}]`,
        );
      } else if (!FLOAT_DTYPES.has(info.dtype)) {
        problems.push(
          `${loc.file}: tensor "${stored}" has dtype ${info.dtype}; T5 weights must be a float type`,
        );
      }
      sources.set(name, { ...loc, stored });
    }
    if (missing.length > 0) {
      const encoderOnly =
        missing.some((n) => n.startsWith('decoder.')) && !missing.some((n) => n.startsWith('encoder.'));
      const hint = encoderOnly
        ? ' (the decoder is missing: this looks like a T5EncoderModel export; promptmesh needs T5ForConditionalGeneration)'
        : missing.includes('lm_head.weight') && missing.length === 1
          ? ` (${CONFIG_FILE} says tie_word_embeddings=false; if the model is tied, set it to true)`
          : '';
      problems.unshift(
        `${missing.length} tensor(s) missing from ${files.join(', ')}: ${missing.slice(0, 8).join(', ')}` +
          `${missing.length > 8 ? ', ...' : ''}${hint}`,
      );
    }
    if (problems.length > 0) {
      const shapeIssue = problems.some((p) => p.includes('implies'));
      throw new CheckpointFormatError(
        `${dir}: not a usable T5 checkpoint for its ${CONFIG_FILE}:\n  - ${problems.slice(0, 12).join('\n  - ')}` +
          `${problems.length > 12 ? `\n  - ... ${problems.length - 12} more` : ''}\n` +
          (shapeIssue
            ? `Check that ${CONFIG_FILE} belongs to these weights (d_model, d_kv, d_ff, num_heads, vocab_size, feed_forward_proj).`
            : 'Re-export the complete model with save_pretrained(..., safe_serialization=True).'),
        dir,
        undefined,
        missing[0],
      );
    }

    const expectedOrAlias = (n: string) => expected.has(n) || aliases.has(n);
    for (const [name, loc] of located) {
      if (!expectedOrAlias(name))
        warnings.push(`${loc.file}: unexpected tensor "${name}" is not part of T5; ignored`);
    }

    const tensors = new Map<string, Float32Tensor>();
    for (const [name, src] of sources) {
      try {
        const t = src.reader.readFloat32(src.stored);
        if (opts.onTensor) opts.onTensor(name, t);
        else tensors.set(name, t);
      } catch (e) {
        if (e instanceof SafetensorsFormatError) {
          throw new CheckpointFormatError(e.message, dir, src.file, name, { cause: e });
        }
        throw e;
      }
    }
    return { config, tensors, files, warnings };
  } finally {
    for (const r of readers) r.close();
  }
}

/**
 * How transformers (huggingface_hub's split_state_dict_into_shards) groups tensors: in order, starting a new
 * shard when the next tensor would push the current one past `maxBytes`; a tensor bigger than `maxBytes`
 * gets a shard of its own.
 */
export function planShards(sizes: readonly (readonly [string, number])[], maxBytes: number): string[][] {
  const shards: string[][] = [];
  let current: string[] = [];
  let currentBytes = 0;
  for (const [name, bytes] of sizes) {
    if (bytes > maxBytes) {
      shards.push([name]);
      continue;
    }
    if (currentBytes + bytes > maxBytes && current.length > 0) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(name);
    currentBytes += bytes;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

export function shardFileName(i: number, n: number): string {
  return `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

export interface WriteT5CheckpointOptions {
  /** Split weights into shards of at most this many bytes (plus index), as save_pretrained(max_shard_size=...). */
  shardBytes?: number;
}

function writeJsonAtomic(file: string, value: unknown): void {
  writeTextAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

function writeTextAtomic(file: string, text: string): void {
  const bytes = new TextEncoder().encode(text);
  writeFileAtomic(file, (fd) => {
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
  });
}

/**
 * Writes a folder transformers' `T5ForConditionalGeneration.from_pretrained` loads: config.json and
 * model.safetensors, or model-0000i-of-0000n.safetensors shards plus model.safetensors.index.json when
 * `shardBytes` splits the weights (a single resulting shard is written unsharded, like transformers). The
 * tensors must be exactly the config's expected set. Weight files from an earlier write in the same folder
 * that the new layout does not use are removed, because loaders prefer model.safetensors over an index.
 * Returns the files written, relative to `dir`.
 */
export function writeT5Checkpoint(
  dir: string,
  config: T5Config,
  tensors: Map<string, Float32Tensor> | Record<string, Float32Tensor>,
  opts: WriteT5CheckpointOptions = {},
): string[] {
  const given = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  const expected = expectedT5TensorShapes(config);
  const problems: string[] = [];
  for (const [name, shape] of expected) {
    const t = given.get(name);
    if (t === undefined) problems.push(`missing "${name}" [${shape.join(', ')}]`);
    else if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      problems.push(`"${name}" has shape [${t.shape.join(', ')}], config implies [${shape.join(', ')}]`);
    } else if (!(t.data instanceof Float32Array) || t.data.length !== shape.reduce((a, b) => a * b, 1)) {
      problems.push(`"${name}" data must be a Float32Array of ${shape.reduce((a, b) => a * b, 1)} values`);
    }
  }
  for (const name of given.keys()) if (!expected.has(name)) problems.push(`unexpected tensor "${name}"`);
  if (problems.length > 0) {
    throw new CheckpointFormatError(
      `${dir}: refusing to write an inconsistent T5 checkpoint: ${problems.slice(0, 10).join('; ')}`,
      dir,
    );
  }
  if (opts.shardBytes !== undefined && !(Number.isSafeInteger(opts.shardBytes) && opts.shardBytes > 0)) {
    throw new RangeError(`shardBytes must be a positive integer, got ${opts.shardBytes}`);
  }
  fs.mkdirSync(dir, { recursive: true });

  const order = [...expected.keys()];
  const asSafetensors = (names: string[]) =>
    new Map<string, SafetensorsTensor>(
      names.map((n) => {
        const t = given.get(n)!;
        return [n, { dtype: 'F32', shape: t.shape, data: t.data }];
      }),
    );
  // transformers tags its safetensors files with format=pt; some loaders check for it.
  const meta = { format: 'pt' };
  const plan =
    opts.shardBytes === undefined
      ? [order]
      : planShards(
          order.map((n) => [n, given.get(n)!.data.byteLength] as const),
          opts.shardBytes,
        );

  const written: string[] = [];
  if (plan.length === 1) {
    writeSafetensors(path.join(dir, SAFE_WEIGHTS_FILE), asSafetensors(order), meta);
    written.push(SAFE_WEIGHTS_FILE);
  } else {
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    plan.forEach((names, i) => {
      const file = shardFileName(i, plan.length);
      writeSafetensors(path.join(dir, file), asSafetensors(names), meta);
      written.push(file);
      for (const n of names) {
        weightMap[n] = file;
        totalSize += given.get(n)!.data.byteLength;
      }
    });
    const sortedMap = Object.fromEntries(
      Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    );
    writeJsonAtomic(path.join(dir, SAFE_WEIGHTS_INDEX_FILE), {
      metadata: { total_size: totalSize },
      weight_map: sortedMap,
    });
    written.push(SAFE_WEIGHTS_INDEX_FILE);
  }
  for (const f of fs.readdirSync(dir)) {
    const stale =
      (f === SAFE_WEIGHTS_FILE || f === SAFE_WEIGHTS_INDEX_FILE || SHARD_NAME.test(f)) &&
      !written.includes(f);
    if (stale) fs.rmSync(path.join(dir, f), { force: true });
  }
  writeTextAtomic(path.join(dir, CONFIG_FILE), t5ConfigJsonText(config));
  written.push(CONFIG_FILE);
  return written;
}
