// Parity with the reference SentencePiece implementation: ids from spm_encode and normalized text from
// spm_normalize, on a corpus the fixture model was not trained on and on the real GLUE RTE sentences.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadTokenizer, type Tokenizer, writeTokenizerJson } from '../../src/model/tokenizer/index.js';
import {
  ensureSpmModel,
  SPM_MISSING_MESSAGE,
  spmEncodeIds,
  spmNormalize,
  testCorpus,
} from '../helpers/spm-fixture.js';

const RTE_TRAIN = path.resolve('..', 'shared', 'data', 'glue', 'RTE', 'train.tsv');

function rteSentences(): string[] | undefined {
  if (!fs.existsSync(RTE_TRAIN)) return undefined;
  const rows = fs.readFileSync(RTE_TRAIN, 'utf8').split('\n').slice(1);
  return rows.filter((r) => r !== '').flatMap((r) => r.split('\t').slice(1, 3));
}

/** Index and both sides of the first differing line, so a failure shows the text that broke. */
function assertSameIds(lines: string[], got: number[][], want: number[][], what: string): void {
  assert.equal(got.length, want.length);
  for (let i = 0; i < lines.length; i++) {
    assert.deepEqual(got[i], want[i], `${what}: line ${i} ${JSON.stringify(lines[i])}`);
  }
}

const modelDir = await ensureSpmModel();

describe('tokenizer vs SentencePiece (spm_encode)', { skip: modelDir ? false : SPM_MISSING_MESSAGE }, () => {
  let tmp: string;
  let fromSpm: Tokenizer;
  let fromJson: Tokenizer;
  let modelFile: string;
  const corpus = testCorpus();

  before(async () => {
    modelFile = path.join(modelDir as string, 'spiece.model');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
    fromSpm = await loadTokenizer(modelFile);
    await writeTokenizerJson(fromSpm, path.join(tmp, 'tokenizer.json'));
    fromJson = await loadTokenizer(tmp);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('T5 special ids and sizes', () => {
    assert.equal(fromSpm.padId, 0);
    assert.equal(fromSpm.eosId, 1);
    assert.equal(fromSpm.unkId, 2);
    assert.equal(fromSpm.idToPiece(1), '</s>');
    assert.equal(fromSpm.pieceToId('<pad>'), 0);
    assert.equal(fromSpm.pieceToId('no such piece'), undefined);
    const spmPieces = fs
      .readFileSync(path.join(modelDir as string, 'spiece.vocab'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(fromSpm.vocabSize, spmPieces.length + 100);
    assert.equal(fromJson.vocabSize, fromSpm.vocabSize);
    // Every piece sits at the id spm_train gave it.
    for (const [id, line] of spmPieces.entries()) assert.equal(fromSpm.idToPiece(id), line.split('\t')[0]);
  });

  test('ids match spm_encode on every line of the test corpus', () => {
    const want = spmEncodeIds(modelFile, corpus);
    assert.ok(
      want.some((ids) => ids.includes(2)),
      'the test corpus must contain characters the model maps to <unk>',
    );
    assertSameIds(corpus, fromSpm.encodeBatch(corpus, { addEos: false }), want, 'spiece.model');
    assertSameIds(corpus, fromJson.encodeBatch(corpus, { addEos: false }), want, 'tokenizer.json');
  });

  test('tokenizer.json layouts transformers has written for T5 all give the spm ids', async () => {
    const written = JSON.parse(fs.readFileSync(path.join(tmp, 'tokenizer.json'), 'utf8'));
    const precompiled = written.normalizer.normalizers[0];
    const metaspaceLegacy = { type: 'Metaspace', replacement: '\u2581', add_prefix_space: true };
    const metaspaceNew = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true };
    const layouts = {
      // transformers 4.x T5 converter: Precompiled only, whitespace split before Metaspace.
      legacy: {
        normalizer: precompiled,
        pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, metaspaceLegacy] },
      },
      // Later converters: whitespace handled in the normalizer, Metaspace with prepend_scheme.
      current: {
        normalizer: {
          type: 'Sequence',
          normalizers: [
            precompiled,
            { type: 'Strip', left: false, right: true },
            { type: 'Replace', pattern: { Regex: ' {2,}' }, content: '\u2581' },
          ],
        },
        pre_tokenizer: metaspaceNew,
      },
    };
    const want = spmEncodeIds(modelFile, corpus, 'eos');
    for (const [name, layout] of Object.entries(layouts)) {
      const dir = fs.mkdtempSync(path.join(tmp, `${name}-`));
      fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ ...written, ...layout }));
      const tok = await loadTokenizer(dir);
      assertSameIds(corpus, tok.encodeBatch(corpus), want, name);
    }
  });

  test('</s> is appended by default, as spm_encode --extra_options=eos does', () => {
    const want = spmEncodeIds(modelFile, corpus, 'eos');
    assertSameIds(corpus, fromSpm.encodeBatch(corpus), want, 'spiece.model');
    assertSameIds(corpus, fromJson.encodeBatch(corpus), want, 'tokenizer.json');
    assert.deepEqual(fromSpm.encode(''), [1]);
  });

  test('normalization matches spm_normalize (nmt_nfkc charsmap)', () => {
    const want = spmNormalize(modelFile, corpus);
    corpus.forEach((line, i) => {
      // spm_normalize prints the normalized text with '▁' as ' ' and without the dummy prefix.
      const got = fromSpm.normalize(line).replaceAll('\u2581', ' ').replace(/^ /, '');
      assert.equal(got, want[i], `line ${i} ${JSON.stringify(line)}`);
    });
    assert.equal(fromSpm.normalize('ＡＢＣ　ﬁ①'), '\u2581ABC\u2581fi1');
  });

  test('decode(encode(x)) is the normalized text', () => {
    let checked = 0;
    for (const line of corpus) {
      const ids = fromSpm.encode(line);
      if (ids.includes(fromSpm.unkId)) {
        // <unk> decodes to SentencePiece's unk surface.
        assert.match(fromSpm.decode(ids), / \u2047 /);
        continue;
      }
      const expected = fromSpm.normalize(line).replaceAll('\u2581', ' ').replace(/^ /, '');
      assert.equal(fromSpm.decode(ids), expected, JSON.stringify(line));
      assert.equal(fromJson.decode(ids), expected, JSON.stringify(line));
      checked++;
    }
    assert.ok(checked > corpus.length / 2, `only ${checked} lines without <unk>`);
    assert.equal(fromSpm.decode([...fromSpm.encode('Hello world'), 0, 0]), 'Hello world');
    assert.equal(fromSpm.decode(fromSpm.encode('Hello world'), { skipSpecial: false }), 'Hello world</s>');
  });

  test('extra ids follow the spm vocabulary, <extra_id_0> highest, and are matched in text', () => {
    const base = fromSpm.vocabSize - 100;
    assert.equal(fromSpm.extraIds, 100);
    assert.equal(fromSpm.extraId(0), base + 99);
    assert.equal(fromSpm.extraId(99), base);
    assert.equal(fromSpm.pieceToId('<extra_id_0>'), base + 99);
    assert.equal(fromJson.extraId(0), base + 99);
    assert.throws(() => fromSpm.extraId(100), RangeError);

    const text = 'The <extra_id_0> walks in <extra_id_1> park';
    const parts = spmEncodeIds(modelFile, ['The', 'walks in', 'park', 'x <extra_id_100> y']);
    const want = [...(parts[0] ?? []), base + 99, ...(parts[1] ?? []), base + 98, ...(parts[2] ?? []), 1];
    assert.deepEqual(fromSpm.encode(text), want);
    assert.deepEqual(fromJson.encode(text), want);
    assert.deepEqual(fromSpm.encode('<extra_id_0>', { addEos: false }), [base + 99]);
    // Not a sentinel of this vocabulary: plain text, as SentencePiece sees it.
    assert.deepEqual(fromSpm.encode('x <extra_id_100> y', { addEos: false }), parts[3]);
    assert.equal(fromSpm.decode(fromSpm.encode(text)), 'The walks in park');
    assert.equal(
      fromSpm.decode(fromSpm.encode(text), { skipSpecial: false }),
      'The<extra_id_0> walks in<extra_id_1> park</s>',
    );
  });

  test('GLUE RTE sentences: ids match spm_encode; throughput', (t) => {
    const lines = rteSentences();
    if (!lines) {
      t.skip(`${RTE_TRAIN} not found (it lives in ../shared beside the checkout)`);
      return;
    }
    const want = spmEncodeIds(modelFile, lines, 'eos');
    assertSameIds(lines, fromSpm.encodeBatch(lines), want, 'spiece.model');
    assertSameIds(lines, fromJson.encodeBatch(lines), want, 'tokenizer.json');

    const rounds = 5;
    const start = performance.now();
    for (let r = 0; r < rounds; r++) fromSpm.encodeBatch(lines);
    const seconds = (performance.now() - start) / 1000;
    const avgChars = lines.reduce((n, l) => n + l.length, 0) / lines.length;
    t.diagnostic(
      `RTE encode throughput: ${Math.round((rounds * lines.length) / seconds)} lines/s ` +
        `(${lines.length} sentences, ${avgChars.toFixed(0)} chars on average, vocab ${fromSpm.vocabSize})`,
    );
  });
});

describe('byte fallback and user-defined symbols', { skip: modelDir ? false : SPM_MISSING_MESSAGE }, () => {
  test('ids match spm_encode', async () => {
    const dir = await ensureSpmModel({
      byteFallback: true,
      userDefinedSymbols: ['<sep>', 'promptmesh', 'ＡＢ'],
    });
    assert.ok(dir);
    const file = path.join(dir, 'spiece.model');
    const tok = await loadTokenizer(file);
    const lines = [
      ...testCorpus().slice(0, 200),
      'promptmesh<sep>promptmeshes and <sep> twice<sep><sep>',
      'ＡＢＣ stays ＡＢ verbatim: user symbols skip the charsmap',
      'ꙮ 𓀀 bytes for unseen characters 鬱',
    ];
    const want = spmEncodeIds(file, lines);
    assert.ok(
      want.some((ids) => ids.some((id) => /^<0x[0-9A-F]{2}>$/.test(tok.idToPiece(id)))),
      'expected byte pieces in the reference output',
    );
    assertSameIds(lines, tok.encodeBatch(lines, { addEos: false }), want, 'spiece.model');
    const sep = tok.pieceToId('<sep>');
    const pm = tok.pieceToId('promptmesh');
    assert.ok(sep !== undefined && pm !== undefined);
    assert.deepEqual(tok.encode('promptmesh<sep>', { addEos: false }).slice(-2), [pm, sep]);
    assert.equal(tok.decode(tok.encode('ꙮ 𓀀 café')), 'ꙮ 𓀀 café');

    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
    try {
      await writeTokenizerJson(tok, path.join(tmp, 'tokenizer.json'));
      const fromJson = await loadTokenizer(tmp);
      assertSameIds(lines, fromJson.encodeBatch(lines, { addEos: false }), want, 'tokenizer.json');
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
