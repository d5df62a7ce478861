// Loading, errors and the tokenizer.json writer on small models built byte by byte here, so these tests
// need no SentencePiece installation.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { command as tokenizeCommand } from '../../src/cli/commands/tokenize.js';
import { commandHelp } from '../../src/cli/main.js';
import {
  loadTokenizer,
  parseSpieceModel,
  TokenizerError,
  TokenizerFormatError,
  TokenizerNotFoundError,
  UnsupportedTokenizerError,
  writeTokenizerJson,
} from '../../src/model/tokenizer/index.js';

// --- a minimal protobuf writer for ModelProto ---------------------------------------------------------
function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, BigInt(n));
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? b | 0x80 : b);
  } while (v > 0n);
  return out;
}
const tag = (field: number, wt: number): number[] => varint((field << 3) | wt);
const str = (field: number, s: string | Uint8Array): number[] => {
  const b = typeof s === 'string' ? [...new TextEncoder().encode(s)] : [...s];
  return [...tag(field, 2), ...varint(b.length), ...b];
};
const msg = (field: number, body: number[]): number[] => [...tag(field, 2), ...varint(body.length), ...body];
const int = (field: number, v: number): number[] => [...tag(field, 0), ...varint(v)];
const f32 = (field: number, v: number): number[] => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, v, true);
  return [...tag(field, 5), ...b];
};

interface Piece {
  piece: string;
  score: number;
  type?: number; // 1 normal, 2 unknown, 3 control, 4 user-defined
}

function modelBytes(pieces: Piece[], opts: { modelType?: number; removeExtra?: boolean } = {}): Uint8Array {
  const out: number[] = [];
  for (const p of pieces)
    out.push(...msg(1, [...str(1, p.piece), ...f32(2, p.score), ...int(3, p.type ?? 1)]));
  // trainer_spec: model_type, unk/bos/eos/pad ids as T5 (bos -1 is a 10-byte varint).
  out.push(
    ...msg(2, [...int(3, opts.modelType ?? 1), ...int(40, 2), ...int(41, -1), ...int(42, 1), ...int(43, 0)]),
  );
  out.push(...msg(3, [...str(1, 'identity'), ...int(3, 1), ...int(4, opts.removeExtra === false ? 0 : 1)]));
  return Uint8Array.from(out);
}

const T5_SPECIALS: Piece[] = [
  { piece: '<pad>', score: 0, type: 3 },
  { piece: '</s>', score: 0, type: 3 },
  { piece: '<unk>', score: 0, type: 2 },
];
const TINY: Piece[] = [
  ...T5_SPECIALS,
  { piece: '\u2581', score: -2 },
  { piece: 'a', score: -1 },
  { piece: 'b', score: -1.5 },
  { piece: '\u2581a', score: -1.2 },
  { piece: 'ab', score: -1.1 },
  { piece: '\u2581ab', score: -0.5 },
];
// ids: <pad>0 </s>1 <unk>2 ▁3 a4 b5 ▁a6 ab7 ▁ab8

describe('hand-built spiece.model', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('parseSpieceModel reads pieces, scores, types and the T5 special ids', () => {
    const spec = parseSpieceModel(modelBytes(TINY), 'tiny.model', 0);
    assert.equal(spec.vocab.length, 9);
    assert.deepEqual(spec.vocab[8], { piece: '\u2581ab', score: -0.5, type: 'normal' });
    assert.deepEqual(spec.vocab[2], { piece: '<unk>', score: 0, type: 'unknown' });
    assert.deepEqual([spec.padId, spec.eosId, spec.unkId, spec.bosId], [0, 1, 2, -1]);
    assert.equal(spec.normalizer.addDummyPrefix, 'always');
    assert.equal(spec.normalizer.removeExtraWhitespaces, true);
  });

  test('Viterbi picks the best-scoring segmentation; unknown runs merge into one <unk>', async () => {
    fs.writeFileSync(path.join(tmp, 'spiece.model'), modelBytes(TINY));
    const tok = await loadTokenizer(tmp, { extraIds: 2 });
    assert.equal(tok.vocabSize, 11);
    assert.equal(tok.extraId(0), 10);
    assert.equal(tok.extraId(1), 9);
    assert.deepEqual(tok.encode('ab'), [8, 1]);
    // "▁ba▁a": ▁ b a ▁a (-5.7) beats every alternative.
    assert.deepEqual(tok.encode('ba a', { addEos: false }), [3, 5, 4, 6]);
    // "▁abcc": ▁ab, then the unknown run "cc" as a single <unk> (min score - 10 per character).
    assert.deepEqual(tok.encode('abcc', { addEos: false }), [8, 2]);
    assert.deepEqual(tok.encode('  ab   ab  ', { addEos: false }), [8, 8]);
    assert.deepEqual(tok.encode('ab<extra_id_1>ab', { addEos: false }), [8, 9, 8]);
    assert.equal(tok.decode([8, 2, 9, 8, 1]), 'ab \u2047  ab');
    assert.equal(tok.decode([8, 9, 8, 1, 0], { skipSpecial: false }), 'ab<extra_id_1> ab</s><pad>');
    assert.throws(() => tok.decode([11]), /token id 11 is outside the vocabulary \(0\.\.10\)/);
    assert.equal(tok.normalize('  a  b '), '\u2581a\u2581b');
  });

  test('remove_extra_whitespaces=false keeps every space', async () => {
    const tok = await loadTokenizerFrom(tmp, 'keep-ws', modelBytes(TINY, { removeExtra: false }));
    assert.equal(tok.normalize(' a  b'), '\u2581\u2581a\u2581\u2581b');
  });

  test('writeTokenizerJson round-trips: same spec, same ids, byte-identical second write', async () => {
    const dir = path.join(tmp, 'rt');
    fs.mkdirSync(dir);
    const fromSpm = await loadTokenizerFrom(tmp, 'rt-src', modelBytes(TINY));
    await writeTokenizerJson(fromSpm, path.join(dir, 'tokenizer.json'));
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
    assert.equal(json.model.type, 'Unigram');
    assert.equal(json.model.unk_id, 2);
    assert.equal(json.model.vocab.length, 109);
    assert.deepEqual(json.model.vocab[8], ['\u2581ab', -0.5]);
    assert.deepEqual(json.model.vocab[9], ['<extra_id_99>', 0]);
    assert.equal(json.added_tokens.length, 103);
    assert.deepEqual(json.post_processor.special_tokens['</s>'].ids, [1]);
    const fromJson = await loadTokenizer(dir);
    assert.deepEqual(
      fromJson.spec.vocab.map((v) => [v.piece, v.type]),
      fromSpm.spec.vocab.map((v) => [v.piece, v.type]),
    );
    assert.deepEqual(fromJson.spec.normalizer, { ...fromSpm.spec.normalizer, name: 'identity' });
    for (const text of ['ab', 'ba a', 'abcc', ' ab <extra_id_0> ba ']) {
      assert.deepEqual(fromJson.encode(text), fromSpm.encode(text), text);
    }
    await writeTokenizerJson(fromJson, path.join(tmp, 'again.json'));
    assert.equal(
      fs.readFileSync(path.join(tmp, 'again.json'), 'utf8'),
      fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'),
    );
  });

  test('tokenizer.json is preferred when both files exist', async () => {
    const dir = path.join(tmp, 'both');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'spiece.model'), modelBytes(TINY));
    await writeTokenizerJson(await loadTokenizer(dir, { extraIds: 3 }), path.join(dir, 'tokenizer.json'));
    const tok = await loadTokenizer(dir);
    assert.equal(tok.extraIds, 3);
    assert.equal(tok.spec.source, path.join(dir, 'tokenizer.json'));
    await assert.rejects(
      loadTokenizer(dir, { extraIds: 100 }),
      /has 3 <extra_id_N> tokens but extraIds: 100/,
    );
  });
});

describe('a folder with both tokenizer files', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const unsupportedJson = JSON.stringify({
    model: { type: 'Unigram', unk_id: 2, vocab: TINY.map((p) => [p.piece, p.score]) },
    added_tokens: T5_SPECIALS.map((p, id) => ({ id, content: p.piece, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'BertNormalizer' }] },
    pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always' },
  });

  test('an unusable tokenizer.json falls back to spiece.model, with a warning saying which file and why', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'both-'));
    fs.writeFileSync(path.join(dir, 'spiece.model'), modelBytes(TINY));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), unsupportedJson);
    const warnings: string[] = [];
    const tok = await loadTokenizer(dir, { onWarning: (m) => warnings.push(m) });
    assert.equal(tok.spec.source, path.join(dir, 'spiece.model'));
    assert.deepEqual(tok.encode('ab', { addEos: false }), [8]);
    assert.equal(warnings.length, 1);
    assert.ok(
      warnings[0]?.startsWith(
        `using ${path.join(dir, 'spiece.model')} because ${path.join(dir, 'tokenizer.json')}: `,
      ),
    );
    assert.match(warnings[0] ?? '', /normalizer\.normalizers\[1\] "BertNormalizer" is not supported/);

    // Alone, the same tokenizer.json is an error naming the normalizer and the file.
    const alone = fs.mkdtempSync(path.join(tmp, 'alone-'));
    fs.writeFileSync(path.join(alone, 'tokenizer.json'), unsupportedJson);
    await assert.rejects(loadTokenizer(alone, { onWarning: (m) => warnings.push(m) }), (err: Error) => {
      assert.ok(err instanceof UnsupportedTokenizerError);
      assert.match(err.message, /tokenizer\.json: normalizer\.normalizers\[1\] "BertNormalizer"/);
      return true;
    });
    assert.equal(warnings.length, 1);
  });

  test('when neither file can be used, the error gives both reasons', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'neither-'));
    fs.writeFileSync(path.join(dir, 'spiece.model'), modelBytes(TINY, { modelType: 2 }));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), unsupportedJson);
    await assert.rejects(
      loadTokenizer(dir, { onWarning: () => assert.fail('no warning expected') }),
      (err: Error) => {
        assert.ok(err instanceof TokenizerError);
        assert.match(
          err.message,
          /neither tokenizer file in .* can be used: .*"BertNormalizer".*; and .*model type is BPE/,
        );
        assert.ok(err.cause instanceof UnsupportedTokenizerError);
        return true;
      },
    );
  });
});

async function loadTokenizerFrom(tmp: string, name: string, bytes: Uint8Array) {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'spiece.model'), bytes);
  return loadTokenizer(dir);
}

describe('tokenizer errors', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const write = (name: string, content: string | Uint8Array): string => {
    const dir = fs.mkdtempSync(path.join(tmp, 'case-'));
    fs.writeFileSync(path.join(dir, name), content);
    return dir;
  };

  test('missing folder', async () => {
    const missing = path.join(tmp, 'nope');
    await assert.rejects(loadTokenizer(missing), (err: Error) => {
      assert.ok(err instanceof TokenizerNotFoundError);
      assert.match(err.message, /tokenizer folder .*nope does not exist/);
      assert.equal(err.source, missing);
      return true;
    });
  });

  test('folder without tokenizer files names the folder and both file names', async () => {
    const empty = fs.mkdtempSync(path.join(tmp, 'empty-'));
    await assert.rejects(loadTokenizer(empty), (err: Error) => {
      assert.ok(err instanceof TokenizerNotFoundError);
      assert.ok(err.message.includes(empty));
      assert.match(err.message, /tokenizer\.json and spiece\.model/);
      return true;
    });
  });

  test('corrupt spiece.model', async () => {
    const good = modelBytes(TINY);
    const truncated = write('spiece.model', good.subarray(0, good.length - 7));
    await assert.rejects(loadTokenizer(truncated), (err: Error) => {
      assert.ok(err instanceof TokenizerFormatError, String(err));
      assert.match(err.message, /spiece\.model: not a valid SentencePiece model: .* at byte \d+/);
      return true;
    });
    // Text is not a protobuf: 'v' is field 14, wire type 6, which does not exist.
    await assert.rejects(
      loadTokenizer(write('spiece.model', '<html>not found</html>')),
      TokenizerFormatError,
    );
    await assert.rejects(
      loadTokenizer(write('spiece.model', 'version https://git-lfs.github.com/spec/v1\noid sha256:00\n')),
      /Git LFS pointer.*git lfs pull/,
    );
    await assert.rejects(loadTokenizer(write('spiece.model', new Uint8Array(0))), /has no pieces/);
    const noUnk = modelBytes(TINY.filter((p) => p.type !== 2));
    await assert.rejects(loadTokenizer(write('spiece.model', noUnk)), /no unknown \(<unk>\) piece/);
    const dup = modelBytes([...TINY, { piece: 'a', score: -3 }]);
    await assert.rejects(loadTokenizer(write('spiece.model', dup)), /'a' is defined twice \(ids 4 and 9\)/);
  });

  test('BPE spiece.model is unsupported', async () => {
    await assert.rejects(
      loadTokenizer(write('spiece.model', modelBytes(TINY, { modelType: 2 }))),
      (err: Error) => {
        assert.ok(err instanceof UnsupportedTokenizerError);
        assert.match(err.message, /model type is BPE; only Unigram/);
        return true;
      },
    );
  });

  test('tokenizer.json that is not Unigram, or not JSON', async () => {
    const bpe = JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] } });
    await assert.rejects(loadTokenizer(write('tokenizer.json', bpe)), (err: Error) => {
      assert.ok(err instanceof UnsupportedTokenizerError);
      assert.match(err.message, /tokenizer\.json: model type is "BPE"; only SentencePiece Unigram/);
      return true;
    });
    const wordpiece = JSON.stringify({ model: { type: 'WordPiece', vocab: { a: 0 } } });
    await assert.rejects(loadTokenizer(write('tokenizer.json', wordpiece)), UnsupportedTokenizerError);
    await assert.rejects(loadTokenizer(write('tokenizer.json', '{"model": ')), (err: Error) => {
      assert.ok(err instanceof TokenizerFormatError);
      assert.match(err.message, /is not valid JSON/);
      assert.ok(err.cause instanceof SyntaxError);
      return true;
    });
    const noMetaspace = JSON.stringify({
      model: { type: 'Unigram', unk_id: 0, vocab: [['<unk>', 0]] },
      pre_tokenizer: { type: 'ByteLevel' },
    });
    await assert.rejects(loadTokenizer(write('tokenizer.json', noMetaspace)), /pre_tokenizer "ByteLevel"/);
    const brokenCharsmap = JSON.stringify({
      model: { type: 'Unigram', unk_id: 2, vocab: TINY.map((p) => [p.piece, p.score]) },
      added_tokens: T5_SPECIALS.map((p, id) => ({ id, content: p.piece, special: true })),
      normalizer: {
        type: 'Precompiled',
        precompiled_charsmap: Buffer.from([8, 0, 0, 0, 1, 2]).toString('base64'),
      },
      pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', add_prefix_space: true },
    });
    await assert.rejects(loadTokenizer(write('tokenizer.json', brokenCharsmap)), (err: Error) => {
      assert.ok(err instanceof TokenizerFormatError);
      assert.match(err.message, /precompiled_charsmap is not a valid precompiled charsmap: trie size 8/);
      return true;
    });
  });
});

describe('promptmesh tokenize', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
    fs.writeFileSync(path.join(tmp, 'spiece.model'), modelBytes(TINY));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  async function run(values: Record<string, string | boolean>, positionals: string[]) {
    let out = '';
    let err = '';
    const sink = (f: (s: string) => void) =>
      new Writable({
        write(chunk, _encoding, done) {
          f(String(chunk));
          done();
        },
      });
    const code = await tokenizeCommand.run({
      values,
      positionals,
      stdout: sink((s) => {
        out += s;
      }),
      stderr: sink((s) => {
        err += s;
      }),
    });
    return { code, out, err };
  }

  test('prints ids, one line per text; --no-eos; --json', async () => {
    assert.deepEqual(await run({ tokenizer: tmp }, ['ab', 'ba a']), {
      code: 0,
      out: '8 1\n3 5 4 6 1\n',
      err: '',
    });
    assert.equal((await run({ tokenizer: tmp, 'no-eos': true }, ['ab'])).out, '8\n');
    const { out } = await run({ tokenizer: tmp, json: true }, ['ab <extra_id_0>']);
    assert.deepEqual(JSON.parse(out), { ids: [8, 108, 1], pieces: ['\u2581ab', '<extra_id_0>', '</s>'] });
    assert.equal(
      (await run({ tokenizer: tmp, 'extra-ids': '0', json: true }, ['ab'])).out,
      '{"ids":[8,1],"pieces":["\u2581ab","</s>"]}\n',
    );
  });

  test('errors: missing --tokenizer is a usage error; a missing folder says which', async () => {
    await assert.rejects(run({}, ['x']), /--tokenizer is required/);
    await assert.rejects(run({ tokenizer: path.join(tmp, 'nope') }, ['x']), TokenizerNotFoundError);
  });

  test('help shows usage, description and examples', () => {
    const help = commandHelp(tokenizeCommand);
    assert.match(help, /Usage: promptmesh tokenize --tokenizer DIR/);
    assert.match(help, /--no-eos/);
    assert.match(help, /Examples:\n {2}promptmesh tokenize --tokenizer/);
  });
});
