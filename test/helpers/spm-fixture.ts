/**
 * A real SentencePiece Unigram model trained with Debian's `spm_train` on a deterministic corpus, cached under
 * os.tmpdir() so every test file (and every run) reuses one model per corpus + options. The ids T5 uses are
 * reproduced: pad 0, eos 1, unk 2, no bos. Default normalization (nmt_nfkc) gives the model a precompiled
 * charsmap, so tokenizer tests exercise it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const SPM_MISSING_MESSAGE =
  'spm_train/spm_encode not found: install SentencePiece (`apt-get install sentencepiece`, or run scripts/setup.sh)';

export interface SpmFixtureOptions {
  vocabSize?: number;
  userDefinedSymbols?: string[];
  byteFallback?: boolean;
}

/** Deterministic PRNG (mulberry32): the corpus, hence the cache key, must not change between runs. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the a of to and in is was for on that with as by at from it his her they be this are have an which ' +
  'not but had one were their all there when been has who more would can she will about into time only ' +
  'new other some could these two may first then do any like my now over such our man me even most made ' +
  'after also did many before must through back years where much your way well down should because each ' +
  'just those people how too little state good very make world still own see men work long get here ' +
  'between both life being under never day same another know while last might us great old year off come ' +
  'since against go came right used take three pope catholic church court murder teenager company shares ' +
  'government minister president election parliament hospital research university scientists study ' +
  'announced reported according million billion percent dollars market economy country city police'
).split(' ');
const NAMES =
  'Paris London Tokyo Berlin Chicago Nottingham Benedict Colette Hutchinson Microsoft Toyota'.split(' ');
const ACCENTED =
  'café naïve résumé Ångström façade jalapeño Zürich São Paulo Kraków Dvořák crème brûlée'.split(' ');
const CJK = [
  '漢字',
  '日本語',
  '中文',
  '東京',
  '北京',
  '学校',
  '研究',
  '経済',
  'テスト',
  'ひらがな',
  '한국어',
  '서울',
];
const EMOJI = ['😀', '👍', '🎉', '❤️', '🚀', '👍🏽', '🇯🇵', '👨‍👩‍👧'];
const PUNCT = [
  ',',
  '.',
  ';',
  ':',
  '!',
  '?',
  '"',
  "'",
  '(',
  ')',
  '-',
  '—',
  '…',
  '«',
  '»',
  '/',
  '&',
  '%',
  '$',
  '#',
];
// nmt_nfkc rewrites these (full-width, ligatures, circled digits, NBSP, ideographic space, half-width kana),
// so the charsmap is exercised in training and in encoding.
const NFKC = ['ＡＢＣ', '１２３', 'ﬁ', 'ﬂ', '①', 'Ⅻ', '\u00a0', '\u3000', 'ｶﾞｷﾞ', 'ｱｲｳ', 'e\u0301', '㍍', '™'];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)] as T;
}

function sentence(r: () => number): string {
  const n = 3 + Math.floor(r() * 18);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = r();
    let w: string;
    if (k < 0.68) w = pick(r, WORDS);
    else if (k < 0.74) w = pick(r, NAMES);
    else if (k < 0.79) w = String(Math.floor(r() * 100000) / (r() < 0.3 ? 100 : 1));
    else if (k < 0.83) w = pick(r, ACCENTED);
    else if (k < 0.87) w = pick(r, CJK);
    else if (k < 0.89) w = pick(r, EMOJI);
    else if (k < 0.91) w = pick(r, NFKC);
    else w = pick(r, WORDS) + pick(r, PUNCT);
    if (i === 0) w = w.charAt(0).toUpperCase() + w.slice(1);
    parts.push(w);
  }
  let sep = ' ';
  const s = r();
  if (s < 0.05) sep = '  ';
  else if (s < 0.08) sep = '\t';
  else if (s < 0.1) sep = ' \t  ';
  let line = parts.join(sep) + pick(r, ['.', '.', '.', '!', '?', '…', '']);
  if (r() < 0.04) line = `  ${line}`;
  if (r() < 0.04) line = `${line}   `;
  return line;
}

/** The training corpus: several thousand varied lines, identical on every run. */
export function trainingCorpus(): string[] {
  const r = rng(20240611);
  const lines: string[] = [];
  for (let i = 0; i < 5000; i++) lines.push(sentence(r));
  return lines;
}

/**
 * A corpus the model was not trained on: other random lines plus hand-picked edge cases (characters the model
 * never saw, so <unk> runs; combining sequences the charsmap composes; whitespace-only and empty lines).
 */
export function testCorpus(): string[] {
  const r = rng(777);
  const lines: string[] = [
    '',
    ' ',
    '\t \t',
    'Hello world',
    '  Hello    world  ',
    'Hello\tworld\t\tagain',
    'ＨＥＬＬＯ　ｗｏｒｌｄ！ １２３',
    'ﬁnance ﬂow ① ② ③ Ⅻ ㍍ ™',
    'ｶﾞｷﾞｸﾞ ｱｲｳｴｵ ﾊﾟﾋﾟ',
    'cafe\u0301 nai\u0308ve A\u030angstro\u0308m',
    'Zero\u200bwidth and soft\u00adhyphen',
    'control\u0001char and bell\u0007',
    'Unseen: ꙮ ᚠᛇᚻ 𓀀𓁐 ⵣ ߷ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
    'Rare CJK run: 鬱鬱鬱 龘靐齉 and 𠀋𠂢',
    'Emoji 😀👍🏽👨‍👩‍👧🇯🇵 rocket🚀',
    'A literal ▁ marker ▁▁ and ▁word',
    'Math ∀x∈ℝ: x² ≥ 0, ½ + ¼ = ¾',
    'Quotes “curly” ‘single’ «guillemets» and — dashes – too',
    '1234567890 3.14159 -42 1e10 0x1F',
    'MiXeD CaSe WoRdS and ALLCAPS',
    'Pope Benedict XVI visited Chicago on 30 October 1983.',
  ];
  for (let i = 0; i < 600; i++) lines.push(sentence(r));
  return lines;
}

function haveSpm(): boolean {
  for (const tool of ['spm_train', 'spm_encode']) {
    const r = spawnSync(tool, ['--version'], { encoding: 'utf8' });
    if (r.error) return false;
  }
  return true;
}

/**
 * Trains (once per corpus + options) and returns a folder holding `spiece.model`, `spiece.vocab` and
 * `corpus.txt`, or undefined when SentencePiece's command-line tools are not installed.
 */
export async function ensureSpmModel(options: SpmFixtureOptions = {}): Promise<string | undefined> {
  if (!haveSpm()) return undefined;
  const corpus = `${trainingCorpus().join('\n')}\n`;
  const args = [
    '--model_type=unigram',
    `--vocab_size=${options.vocabSize ?? 1200}`,
    '--character_coverage=0.9995',
    '--pad_id=0',
    '--eos_id=1',
    '--unk_id=2',
    '--bos_id=-1',
    '--num_threads=2',
    '--random_seed=42',
    '--minloglevel=2',
  ];
  if (options.userDefinedSymbols?.length)
    args.push(`--user_defined_symbols=${options.userDefinedSymbols.join(',')}`);
  if (options.byteFallback) args.push('--byte_fallback=true');
  const version = spawnSync('spm_train', ['--version'], { encoding: 'utf8' }).stdout.trim();
  const key = createHash('sha256').update(corpus).update(JSON.stringify(args)).update(version).digest('hex');
  const root = path.join(os.tmpdir(), 'promptmesh-spm-fixture');
  const dir = path.join(root, key.slice(0, 16));
  if (fs.existsSync(path.join(dir, 'spiece.model'))) return dir;

  fs.mkdirSync(root, { recursive: true });
  // Train into a private folder and rename it into place: concurrent test files either win the rename or
  // find the finished folder, never a half-written one.
  const tmp = fs.mkdtempSync(path.join(root, `${key.slice(0, 16)}.tmp-`));
  try {
    fs.writeFileSync(path.join(tmp, 'corpus.txt'), corpus);
    execFileSync(
      'spm_train',
      [`--input=${path.join(tmp, 'corpus.txt')}`, `--model_prefix=${tmp}/spiece`, ...args],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    try {
      fs.renameSync(tmp, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (!fs.existsSync(path.join(dir, 'spiece.model')))
    throw new Error(`spm fixture: ${dir}/spiece.model missing`);
  return dir;
}

/** Ids from the reference implementation, one array per line (`spm_encode --output_format=id`). */
export function spmEncodeIds(modelFile: string, lines: string[], extraOptions?: string): number[][] {
  const args = [`--model=${modelFile}`, '--output_format=id'];
  if (extraOptions) args.push(`--extra_options=${extraOptions}`);
  const out = execFileSync('spm_encode', args, {
    input: `${lines.join('\n')}\n`,
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  const rows = out.split('\n');
  rows.pop();
  if (rows.length !== lines.length) {
    throw new Error(`spm_encode returned ${rows.length} lines for ${lines.length} inputs`);
  }
  return rows.map((row) => (row === '' ? [] : row.split(' ').map(Number)));
}

/** Normalized text from the reference implementation (`spm_normalize`), one string per line. */
export function spmNormalize(modelFile: string, lines: string[]): string[] {
  const out = execFileSync('spm_normalize', [`--model=${modelFile}`], {
    input: `${lines.join('\n')}\n`,
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  const rows = out.split('\n');
  rows.pop();
  if (rows.length !== lines.length) {
    throw new Error(`spm_normalize returned ${rows.length} lines for ${lines.length} inputs`);
  }
  return rows;
}
