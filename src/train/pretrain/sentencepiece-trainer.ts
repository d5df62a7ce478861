/**
 * Trains a SentencePiece Unigram model with the reference `spm_train` binary (Debian/Ubuntu package
 * `sentencepiece`), with the ids T5 uses: pad 0, eos 1, unk 2, no bos. We shell out rather than reimplement the
 * trainer so that the shipped spiece.model is exactly what SentencePiece itself produces.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const SPM_INSTALL_HINT =
  "install SentencePiece's command-line tools (`sudo apt-get install sentencepiece` on Debian/Ubuntu, " +
  '`brew install sentencepiece` on macOS, or scripts/setup.sh), or pass --tokenizer DIR with an existing ' +
  'spiece.model/tokenizer.json';

/** spm_train is not installed (or not on PATH). */
export class SentencePieceNotInstalledError extends Error {
  override name = 'SentencePieceNotInstalledError';
}

/** spm_train ran and failed. */
export class SentencePieceTrainError extends Error {
  override name = 'SentencePieceTrainError';
}

export interface SpmTrainOptions {
  vocabSize: number;
  seed: number;
  /** Pieces that must stay whole wherever they occur (SentencePiece matches them even inside words). */
  userDefinedSymbols?: readonly string[];
  /** Let spm_train stop below vocabSize when the corpus cannot fill it (small synthetic corpora). */
  hardVocabLimit?: boolean;
}

/** The spm_train arguments besides input/model_prefix, in a fixed order (they are recorded in the README). */
export function spmTrainArgs(options: SpmTrainOptions): string[] {
  const args = [
    '--model_type=unigram',
    `--vocab_size=${options.vocabSize}`,
    '--character_coverage=1.0',
    '--pad_id=0',
    '--eos_id=1',
    '--unk_id=2',
    '--bos_id=-1',
    `--hard_vocab_limit=${options.hardVocabLimit === true}`,
    `--random_seed=${options.seed}`,
    // One thread: the result must not depend on the machine's core count.
    '--num_threads=1',
    '--minloglevel=2',
  ];
  if (options.userDefinedSymbols?.length)
    args.push(`--user_defined_symbols=${options.userDefinedSymbols.join(',')}`);
  return args;
}

/** Writes `spiece.model` (and spiece.vocab) into `outDir` trained on `lines`; returns the model's path. */
export function trainSentencePiece(
  lines: readonly string[],
  outDir: string,
  options: SpmTrainOptions,
): string {
  const probe = spawnSync('spm_train', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    throw new SentencePieceNotInstalledError(`spm_train was not found on PATH: ${SPM_INSTALL_HINT}`, {
      cause: probe.error,
    });
  }
  fs.mkdirSync(outDir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-spm-'));
  try {
    const corpus = path.join(tmp, 'corpus.txt');
    fs.writeFileSync(corpus, `${lines.join('\n')}\n`);
    const prefix = path.join(tmp, 'spiece');
    const r = spawnSync(
      'spm_train',
      [`--input=${corpus}`, `--model_prefix=${prefix}`, ...spmTrainArgs(options)],
      {
        encoding: 'utf8',
        maxBuffer: 1 << 26,
      },
    );
    if (r.status !== 0) {
      const tail = (r.stderr ?? '').trim().split('\n').slice(-5).join('\n');
      throw new SentencePieceTrainError(
        `spm_train failed (exit ${r.status ?? r.signal}) on ${lines.length} lines: ${tail}`,
        r.error ? { cause: r.error } : undefined,
      );
    }
    const model = path.join(outDir, 'spiece.model');
    fs.copyFileSync(`${prefix}.model`, model);
    return model;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
