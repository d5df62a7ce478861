// The tokenizers library's normalizers (tokenizer.json `normalizer`): each one on its own, the errors for the
// ones promptmesh does not run, and ids equal to Python's `tokenizers` on tokenizer.json files that library
// builds for a real SentencePiece model.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  compileTextNormalizer,
  loadTokenizer,
  type Tokenizer,
  UnsupportedTokenizerError,
  writeTokenizerJson,
} from '../../src/model/tokenizer/index.js';
import { ensureSpmModel, SPM_MISSING_MESSAGE, spmEncodeIds, testCorpus } from '../helpers/spm-fixture.js';

const norm = (node: unknown) => compileTextNormalizer(node, 'x/tokenizer.json');

describe('normalizers, one at a time', () => {
  test('NFC and NFD compose and decompose', () => {
    assert.equal(norm({ type: 'NFC' })('cafe\u0301'), 'caf\u00e9');
    assert.equal(norm({ type: 'NFD' })('caf\u00e9'), 'cafe\u0301');
    // Canonical forms leave compatibility characters alone.
    assert.equal(norm({ type: 'NFC' })('\ufb01\uff21'), '\ufb01\uff21');
  });

  test('NFKC and NFKD fold ligatures, full-width and circled characters', () => {
    assert.equal(
      norm({ type: 'NFKC' })('\ufb01nance \uff21\uff22\uff23 \u2460 \u3000e\u0301'),
      'finance ABC 1  \u00e9',
    );
    assert.equal(norm({ type: 'NFKD' })('\ufb01 \u00e9'), 'fi e\u0301');
  });

  test('Lowercase works per code point (no final-sigma rule), as the library does', () => {
    assert.equal(
      norm({ type: 'Lowercase' })('H\u00c9LLO \u03a3\u0391\u03a3'),
      'h\u00e9llo \u03c3\u03b1\u03c3',
    );
    assert.notEqual('\u03a3\u0391\u03a3'.toLowerCase(), '\u03c3\u03b1\u03c3');
  });

  test('Strip removes Unicode White_Space on the sides it is asked to, not U+FEFF', () => {
    const s = '\u0085\u00a0 a b \ufeff\u3000';
    assert.equal(norm({ type: 'Strip', strip_left: true, strip_right: true })(s), 'a b \ufeff');
    assert.equal(norm({ type: 'Strip', strip_left: false, strip_right: true })('  a  '), '  a');
    assert.equal(norm({ type: 'Strip', left: true, right: false })('  a  '), 'a  ');
  });

  test('StripAccents removes combining marks', () => {
    assert.equal(norm({ type: 'StripAccents' })('e\u0301 \u093e x'), 'e  x');
  });

  test('Replace: literal strings, regular expressions, and literal replacement text', () => {
    assert.equal(norm({ type: 'Replace', pattern: { String: '``' }, content: '"' })('``a`` b'), '"a" b');
    assert.equal(
      norm({ type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' })('a  b     c d'),
      'a b c d',
    );
    assert.equal(norm({ type: 'Replace', pattern: { Regex: '(a)' }, content: '$1$1' })('ab'), '$1$1b');
  });

  test('Prepend adds its text to non-empty input only', () => {
    const p = norm({ type: 'Prepend', prepend: '\u2581' });
    assert.equal(p('x'), '\u2581x');
    assert.equal(p(''), '');
  });

  test('Nmt drops control characters and turns other spaces into " "', () => {
    assert.equal(
      norm({ type: 'Nmt' })('a\u0001b\u000bc\td\u200be\ufeff f\u2581g\ufffdh\u007fi\u008fj\u009fk\u3000l'),
      'abc d e  f g hijk\u3000l',
    );
  });

  test('Sequence applies its steps in order; null is the identity', () => {
    const seq = norm({
      type: 'Sequence',
      normalizers: [
        { type: 'NFKC' },
        { type: 'Lowercase' },
        { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' },
      ],
    });
    assert.equal(seq('\uff28\uff29\u3000 \u3000there'), 'hi there');
    assert.equal(norm(null)('A  b'), 'A  b');
  });

  test('unsupported normalizers are errors naming the normalizer, its place and the file', () => {
    assert.throws(
      () => norm({ type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'BertNormalizer' }] }),
      (err: Error) => {
        assert.ok(err instanceof UnsupportedTokenizerError);
        assert.equal(err.field, 'normalizer.normalizers[1]');
        assert.match(
          err.message,
          /^x\/tokenizer\.json: normalizer\.normalizers\[1\] "BertNormalizer" is not supported/,
        );
        assert.match(err.message, /NFKC, NFKD, Lowercase/);
        return true;
      },
    );
    assert.throws(
      () => norm({ type: 'Replace', pattern: { Regex: '(?<=a' }, content: '' }),
      /Replace pattern "\(\?<=a" is not a regular expression JavaScript can run/,
    );
  });
});

const modelDir = await ensureSpmModel();

describe('Precompiled, the tokenizers way', { skip: modelDir ? false : SPM_MISSING_MESSAGE }, () => {
  test('grapheme clusters and shortest-rule matches, unlike SentencePiece', async () => {
    const spm = await loadTokenizer(path.join(modelDir as string, 'spiece.model'));
    const b64 = Buffer.from(spm.spec.normalizer.precompiledCharsmap).toString('base64');
    const pre = norm({ type: 'Precompiled', precompiled_charsmap: b64 });
    assert.equal(pre('\uff21\uff22\uff23 \ufb01 \u2460 caf\u00e9'), 'ABC fi 1 caf\u00e9');
    // Half-width KA + voicing mark is one 6-byte cluster, so the library maps each character on its own;
    // SentencePiece's longest match composes the pair into GA.
    assert.equal(pre('\uff76\uff9e'), '\u30ab\u3099');
    assert.equal(spm.normalize('\uff76\uff9e'), '\u2581\u30ac');
    assert.equal(norm({ type: 'Precompiled', precompiled_charsmap: '' })('\uff21'), '\uff21');
  });
});

// A tiny Unigram tokenizer.json, so the pipeline is checked without Python or SentencePiece.
const TINY_VOCAB: [string, number][] = [
  ['<pad>', 0],
  ['</s>', 0],
  ['<unk>', 0],
  ['\u2581', -2],
  ['a', -1],
  ['b', -1.5],
  ['\u2581a', -1.2],
  ['ab', -1.1],
  ['\u2581ab', -0.5],
];
function tinyJson(
  normalizer: unknown,
  preTokenizer: unknown = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true },
) {
  return {
    model: { type: 'Unigram', unk_id: 2, vocab: TINY_VOCAB },
    added_tokens: ['<pad>', '</s>', '<unk>'].map((content, id) => ({ id, content, special: true })),
    normalizer,
    pre_tokenizer: preTokenizer,
  };
}

describe('tokenizer.json with the tokenizers library semantics', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const load = async (json: unknown): Promise<Tokenizer> => {
    const dir = fs.mkdtempSync(path.join(tmp, 'case-'));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
    return loadTokenizer(dir);
  };

  test('Sequence[NFKC, Lowercase, Replace] loads and encodes through the normalizers', async () => {
    const tok = await load(
      tinyJson({
        type: 'Sequence',
        normalizers: [
          { type: 'NFKC' },
          { type: 'Lowercase' },
          { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' },
        ],
      }),
    );
    assert.equal(tok.spec.hf?.whitespaceSplit, false);
    // 'ＡＢ' -> 'ab' -> '▁ab'; two spaces collapse to one, which Metaspace turns into the next word's '▁'.
    assert.deepEqual(tok.encode('\uff21\uff22  A'), [8, 6, 1]);
    assert.equal(tok.normalize('\uff21\uff22  A'), '\u2581ab\u2581a');
    // Without Strip, a trailing space is a word of its own, as in the library.
    assert.deepEqual(tok.encode('ab ', { addEos: false }), [8, 3]);
  });

  test('WhitespaceSplit + Metaspace split words; prepend_scheme first only prepends at offset 0', async () => {
    const tok = await load(
      tinyJson(
        {
          type: 'Sequence',
          normalizers: [{ type: 'NFKC' }, { type: 'Strip', strip_left: true, strip_right: true }],
        },
        {
          type: 'Sequence',
          pretokenizers: [
            { type: 'WhitespaceSplit' },
            { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: true },
          ],
        },
      ),
    );
    assert.deepEqual(tok.encode('ab\tab', { addEos: false }), [8, 7]);
    // The stripped leading space moves the first word off offset 0: no '▁'.
    assert.deepEqual(tok.encode(' ab', { addEos: false }), [7]);
  });

  test('writeTokenizerJson re-emits the normalizer and pre-tokenizer verbatim', async () => {
    const normalizer = { type: 'Sequence', normalizers: [{ type: 'NFKD' }, { type: 'StripAccents' }] };
    const tok = await load(tinyJson(normalizer));
    const file = path.join(tmp, 'again.json');
    await writeTokenizerJson(tok, file);
    const again = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.deepEqual(again.normalizer, normalizer);
    assert.deepEqual(again.pre_tokenizer, tinyJson(null).pre_tokenizer);
    const reloaded = await loadTokenizer(file);
    assert.deepEqual(reloaded.encode('\u00e1b \u00e1'), tok.encode('\u00e1b \u00e1'));
    assert.deepEqual(tok.encode('\u00e1b', { addEos: false }), [8]);
  });

  test('an unsupported normalizer is still refused, naming it and the file', async () => {
    await assert.rejects(load(tinyJson({ type: 'BertNormalizer', lowercase: true })), (err: Error) => {
      assert.ok(err instanceof UnsupportedTokenizerError);
      assert.match(err.message, /tokenizer\.json: normalizer "BertNormalizer" is not supported/);
      return true;
    });
  });
});

// --- end to end against Python's tokenizers -------------------------------------------------------------
const RTE_TRAIN = path.resolve('..', 'shared', 'data', 'glue', 'RTE', 'train.tsv');
const REFERENCE = path.resolve('test', 'helpers', 'hf_tokenizers_reference.py');
const haveTokenizers = spawnSync('python3', ['-c', 'import tokenizers'], { encoding: 'utf8' }).status === 0;
const skipE2e = !modelDir
  ? SPM_MISSING_MESSAGE
  : !haveTokenizers
    ? 'python3 cannot import tokenizers (run `bash scripts/setup.sh --python-peers`)'
    : false;

const OWN_LINES = [
  'Cr\u00e8me br\u00fbl\u00e9e, na\u00efve caf\u00e9 in Z\u00fcrich; cafe\u0301 decomposed.',
  '\uff26\uff55\uff4c\uff4c\uff0d\uff57\uff49\uff44\uff54\uff48\u3000\uff34\uff25\uff38\uff34 \uff11\uff12\uff13\uff01',
  'Many     spaces   between\t\ttabs  and\u00a0\u00a0nbsp',
  'Ligatures: \ufb01nance, \ufb02ow, \ufb00ect, \u0132sselmeer, \u2163 and \u33a1',
  '   leading and trailing   ',
  'UPPER \u03a3\u0391\u03a3 and \u0130stanbul',
  'Control\u0001 and zero\u200bwidth and bom\ufeff.',
  "``Quoted'' text with ``LaTeX'' quotes",
];

describe('ids equal Python tokenizers on tokenizer.json files it builds', { skip: skipE2e }, () => {
  let tmp: string;
  let lines: string[];
  let rteCount = 0;
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
    const spm = await loadTokenizer(path.join(modelDir as string, 'spiece.model'));
    await writeTokenizerJson(spm, path.join(tmp, 'base.json'));
    lines = [...testCorpus(), ...OWN_LINES];
    if (fs.existsSync(RTE_TRAIN)) {
      const rows = fs.readFileSync(RTE_TRAIN, 'utf8').split('\n').slice(1);
      const rte = rows.filter((r) => r !== '').flatMap((r) => r.split('\t').slice(1, 3));
      rteCount = rte.length;
      lines.push(...rte);
    }
    fs.writeFileSync(path.join(tmp, 'lines.json'), JSON.stringify(lines));
    const r = spawnSync(
      'python3',
      [REFERENCE, path.join(tmp, 'base.json'), path.join(tmp, 'lines.json'), path.join(tmp, 'out')],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 0, `${REFERENCE} failed: ${r.stderr}`);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const want = (name: string): number[][] =>
    JSON.parse(fs.readFileSync(path.join(tmp, 'out', `${name}.ids.json`), 'utf8'));
  const compare = (tok: Tokenizer, expected: number[][], what: string): void => {
    assert.equal(expected.length, lines.length);
    for (const [i, line] of lines.entries()) {
      assert.deepEqual(tok.encode(line), expected[i], `${what}: line ${i} ${JSON.stringify(line)}`);
    }
  };

  for (const name of [
    'nfkc_replace',
    'nfc',
    'nfd_strip_accents_lowercase',
    'nfkd_strip',
    'nmt_nfkc_lowercase',
    'replace_precompiled',
  ]) {
    test(`${name}: every line`, async (t) => {
      if (rteCount === 0)
        t.diagnostic(`${RTE_TRAIN} not found (it lives in ../shared beside the checkout): own strings only`);
      const tok = await loadTokenizer(path.join(tmp, 'out', name));
      assert.ok(tok.spec.hf, 'runs with the tokenizers semantics');
      compare(tok, want(name), name);
      t.diagnostic(
        `${name}: ${lines.length} lines (${rteCount} RTE sentences) equal to Python tokenizers, 0 mismatches`,
      );
    });
  }

  test('converter layout (Precompiled, Strip, Replace): spm ids by default, Python ids when asked', async (t) => {
    const dir = path.join(tmp, 'out', 'converter');
    const python = want('converter');
    const spmIds = spmEncodeIds(path.join(modelDir as string, 'spiece.model'), lines, 'eos');
    const differ = lines.filter((_, i) => JSON.stringify(python[i]) !== JSON.stringify(spmIds[i])).length;
    compare(await loadTokenizer(dir), spmIds, 'default (SentencePiece)');
    compare(await loadTokenizer(dir, { jsonSemantics: 'tokenizers' }), python, 'tokenizers');
    t.diagnostic(
      `converter layout: ${lines.length} lines; Python tokenizers and spm_encode differ on ${differ} ` +
        '(float64 ties, grapheme-wise Precompiled); promptmesh equals each in its mode',
    );
  });
});
