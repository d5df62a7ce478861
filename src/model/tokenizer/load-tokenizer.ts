/**
 * Finds and loads the tokenizer of a local Hugging Face model folder. tokenizer.json wins over spiece.model
 * when both exist: it is what transformers' fast tokenizer uses, and it lists the added tokens explicitly.
 * When the folder has both and tokenizer.json cannot be used (damaged, or a tokenizer promptmesh does not
 * run), spiece.model is used instead and a warning says so and why: silently switching files could change ids.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { TokenizerError, TokenizerNotFoundError } from './errors.js';
import { DEFAULT_EXTRA_IDS, parseSpieceModel } from './spiece-model.js';
import { Tokenizer } from './tokenizer.js';
import { parseTokenizerJson, type TokenizerJsonSemantics, tokenizerJsonFromSpec } from './tokenizer-json.js';

export const TOKENIZER_FILES = ['tokenizer.json', 'spiece.model'] as const;

export interface LoadTokenizerOptions {
  /**
   * Number of `<extra_id_N>` sentinels. With spiece.model they are appended after the SentencePiece pieces
   * (default 100, as transformers' T5Tokenizer); tokenizer.json lists its own, and a different explicit
   * value is an error.
   */
  extraIds?: number;
  /** How a tokenizer.json converted from a SentencePiece model encodes (see TokenizerJsonSemantics). */
  jsonSemantics?: TokenizerJsonSemantics;
  /** Receives warnings (which file was used and why); default: printed to stderr. */
  onWarning?: (message: string) => void;
}

async function stat(p: string): Promise<import('node:fs').Stats | undefined> {
  try {
    return await fs.stat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Loads `tokenizer.json` or `spiece.model` from `dir` (a folder, or one of those files directly). */
export async function loadTokenizer(dir: string, options: LoadTokenizerOptions = {}): Promise<Tokenizer> {
  const st = await stat(dir);
  if (st === undefined) {
    throw new TokenizerNotFoundError(
      `tokenizer folder ${dir} does not exist (expected a Hugging Face model folder with ${TOKENIZER_FILES.join(' or ')})`,
      dir,
    );
  }
  const warn =
    options.onWarning ?? ((m: string) => process.stderr.write(`promptmesh tokenizer: warning: ${m}\n`));
  let file: string | undefined;
  let fallback: string | undefined;
  if (st.isFile()) {
    file = dir;
  } else {
    for (const name of TOKENIZER_FILES) {
      const candidate = path.join(dir, name);
      if ((await stat(candidate))?.isFile()) {
        if (file === undefined) file = candidate;
        else fallback = candidate;
      }
    }
    if (file === undefined) {
      throw new TokenizerNotFoundError(
        `no tokenizer in ${dir}: looked for ${TOKENIZER_FILES.join(' and ')}. Point --tokenizer at the folder ` +
          'of a T5 checkpoint saved by transformers (save_pretrained) or downloaded from the Hub.',
        dir,
      );
    }
  }
  if (file.endsWith('.json')) {
    let spec: ReturnType<typeof parseTokenizerJson>;
    try {
      spec = parseTokenizerJson(await fs.readFile(file, 'utf8'), file, options.jsonSemantics);
    } catch (err) {
      if (fallback === undefined || !(err instanceof TokenizerError)) throw err;
      let tok: Tokenizer;
      try {
        tok = await loadSpiece(fallback, options);
      } catch (spieceErr) {
        throw new TokenizerError(
          `neither tokenizer file in ${dir} can be used: ${err.message}; and ${(spieceErr as Error).message}`,
          dir,
          { cause: err },
        );
      }
      warn(`using ${fallback} because ${err.message}`);
      return tok;
    }
    const tok = new Tokenizer(spec);
    if (options.extraIds !== undefined && options.extraIds !== tok.extraIds) {
      throw new TokenizerError(
        `${file} has ${tok.extraIds} <extra_id_N> tokens but extraIds: ${options.extraIds} was asked for; ` +
          'omit extraIds to use the file as it is',
        file,
      );
    }
    return tok;
  }
  return loadSpiece(file, options);
}

async function loadSpiece(file: string, options: LoadTokenizerOptions): Promise<Tokenizer> {
  const bytes = await fs.readFile(file);
  return new Tokenizer(parseSpieceModel(new Uint8Array(bytes), file, options.extraIds ?? DEFAULT_EXTRA_IDS));
}

/** Writes a Hugging Face tokenizer.json equivalent to `tokenizer` (typically one loaded from spiece.model). */
export async function writeTokenizerJson(tokenizer: Tokenizer, file: string): Promise<void> {
  const json = `${JSON.stringify(tokenizerJsonFromSpec(tokenizer.spec), null, 2)}\n`;
  const tmp = `${file}.tmp-${process.pid}`;
  await fs.writeFile(tmp, json);
  await fs.rename(tmp, file);
}
