import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import {
  CheckpointFormatError,
  encodeSafetensors,
  type Float32Tensor,
  loadT5Checkpoint,
  makeTinyT5,
  planShards,
  readSafetensors,
  readSafetensorsHeader,
  t5ConfigToJson,
  writeSafetensors,
  writeT5Checkpoint,
} from '../../src/model/checkpoint/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const freshDir = (label: string) => path.join(tmp, `${label}-${counter++}`);

function checkpointError(fn: () => unknown, pattern: RegExp): CheckpointFormatError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof CheckpointFormatError, `expected CheckpointFormatError, got ${String(caught)}`);
  assert.match(caught.message, pattern);
  return caught;
}

function bytesOf(t: Float32Tensor): Buffer {
  return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function assertSameTensors(a: Map<string, Float32Tensor>, b: Map<string, Float32Tensor>): void {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [name, t] of a) {
    const u = b.get(name)!;
    assert.deepEqual(u.shape, t.shape, name);
    assert.ok(bytesOf(u).equals(bytesOf(t)), `${name}: bytes differ`);
  }
}

/** Rewrites one safetensors file of a folder through `edit`. */
function editFile(
  file: string,
  edit: (t: Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>) => void,
) {
  const contents = readSafetensors(file);
  const map = contents.tensors as Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>;
  edit(map);
  writeSafetensors(file, map, contents.metadata);
}

describe('tiny T5 checkpoints', () => {
  for (const variant of ['v1', 'v1.1'] as const) {
    for (const shardBytes of [undefined, 3000]) {
      test(`${variant} ${shardBytes ? 'sharded' : 'single file'}: written and loaded back with identical bytes`, () => {
        const dir = freshDir(variant);
        const { config, tensors } = makeTinyT5({ variant, seed: 7 });
        const files = writeT5Checkpoint(dir, config, tensors, shardBytes ? { shardBytes } : {});
        const loaded = loadT5Checkpoint(dir);
        assert.deepEqual(loaded.config, config);
        assert.deepEqual(loaded.warnings, []);
        assertSameTensors(tensors, loaded.tensors);
        assert.equal(loaded.tensors.has('lm_head.weight'), variant === 'v1.1');
        assert.equal(
          loaded.tensors.has('encoder.block.0.layer.1.DenseReluDense.wi_0.weight'),
          variant === 'v1.1',
        );
        if (shardBytes) {
          assert.ok(loaded.files.length > 1);
          assert.deepEqual(files, [...loaded.files, 'model.safetensors.index.json', 'config.json']);
          loaded.files.forEach((f, i) => {
            assert.equal(
              f,
              `model-${String(i + 1).padStart(5, '0')}-of-${String(loaded.files.length).padStart(5, '0')}.safetensors`,
            );
            // Each shard's data fits the limit unless it is a single tensor bigger than the limit.
            const h = readSafetensorsHeader(path.join(dir, f));
            assert.ok(h.fileSize - h.dataStart <= shardBytes || h.tensors.size === 1, f);
            assert.deepEqual(h.metadata, { format: 'pt' });
          });
          const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
          const total = [...tensors.values()].reduce((a, t) => a + t.data.byteLength, 0);
          assert.deepEqual(index.metadata, { total_size: total });
          assert.deepEqual(Object.keys(index.weight_map), [...tensors.keys()].sort());
        } else {
          assert.deepEqual(loaded.files, ['model.safetensors']);
          assert.deepEqual(files, ['model.safetensors', 'config.json']);
        }
        const config2 = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
        assert.deepEqual(config2, t5ConfigToJson(config));
        // Streamed (how loadT5Model reads): each tensor handed over once, in the same order, none collected.
        const streamed = new Map<string, { shape: number[]; data: Float32Array }>();
        const again = loadT5Checkpoint(dir, {
          onTensor: (name, t) => {
            assert.ok(!streamed.has(name), `${name} handed over twice`);
            streamed.set(name, t);
          },
        });
        assert.equal(again.tensors.size, 0);
        assert.deepEqual([...streamed.keys()], [...loaded.tensors.keys()]);
        assertSameTensors(tensors, streamed);
      });
    }
  }

  test('same seed gives byte-identical files; another seed different values', () => {
    const a = freshDir('det');
    const b = freshDir('det');
    for (const d of [a, b]) {
      const { config, tensors } = makeTinyT5({ variant: 'v1.1', seed: 3 });
      writeT5Checkpoint(d, config, tensors, { shardBytes: 5000 });
    }
    const names = fs.readdirSync(a).sort();
    assert.deepEqual(fs.readdirSync(b).sort(), names);
    for (const f of names)
      assert.ok(fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f))), f);
    const s3 = makeTinyT5({ variant: 'v1', seed: 3 }).tensors.get('shared.weight')!;
    const s4 = makeTinyT5({ variant: 'v1', seed: 4 }).tensors.get('shared.weight')!;
    assert.ok(!bytesOf(s3).equals(bytesOf(s4)));
  });

  test("init scales follow T5's _init_weights", () => {
    const { config, tensors } = makeTinyT5({
      variant: 'v1.1',
      seed: 1,
      vocabSize: 4000,
      dModel: 64,
      dKv: 16,
      numHeads: 4,
      dFf: 256,
    });
    assert.equal(config.vocabSize, 4000);
    const std = (name: string) => {
      const d = tensors.get(name)!.data;
      let s = 0;
      for (const x of d) s += x * x;
      return Math.sqrt(s / d.length);
    };
    const near = (name: string, want: number) => {
      const got = std(name);
      assert.ok(Math.abs(got / want - 1) < 0.1, `${name}: std ${got}, want ${want}`);
    };
    near('shared.weight', 1);
    near('lm_head.weight', 1);
    near('encoder.block.0.layer.0.SelfAttention.q.weight', (64 * 16) ** -0.5);
    near('encoder.block.0.layer.0.SelfAttention.k.weight', 64 ** -0.5);
    near('decoder.block.1.layer.1.EncDecAttention.o.weight', 64 ** -0.5);
    near('encoder.block.1.layer.1.DenseReluDense.wi_0.weight', 64 ** -0.5);
    near('encoder.block.1.layer.1.DenseReluDense.wo.weight', 256 ** -0.5);
    assert.ok(tensors.get('decoder.final_layer_norm.weight')!.data.every((x) => x === 1));
  });

  test('the make-tiny-t5 script writes a loadable folder with the requested shards', () => {
    const script = path.join(process.cwd(), 'dist', 'scripts', 'make-tiny-t5.js');
    const dir = freshDir('script');
    const r = spawnSync(
      process.execPath,
      [script, '--out', dir, '--variant', 'v1.1', '--seed', '9', '--vocab', '200', '--shards', '3'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const loaded = loadT5Checkpoint(dir);
    assert.equal(loaded.files.length, 3);
    assert.equal(loaded.config.vocabSize, 200);
    assertSameTensors(makeTinyT5({ variant: 'v1.1', seed: 9, vocabSize: 200 }).tensors, loaded.tensors);
    const bad = spawnSync(process.execPath, [script, '--out', dir, '--variant', 'v2'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--variant must be v1 or v1.1/);
  });

  test('rewriting a folder unsharded removes the old shards and index (and vice versa)', () => {
    const dir = freshDir('rewrite');
    const { config, tensors } = makeTinyT5({ variant: 'v1', seed: 1 });
    writeT5Checkpoint(dir, config, tensors, { shardBytes: 3000 });
    writeT5Checkpoint(dir, config, tensors);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
    writeT5Checkpoint(dir, config, tensors, { shardBytes: 3000 });
    assert.ok(!fs.existsSync(path.join(dir, 'model.safetensors')));
    assert.equal(loadT5Checkpoint(dir).files.length > 1, true);
  });

  test('invalid tiny options fail like a bad config.json would', () => {
    assert.throws(
      () => makeTinyT5({ variant: 'v1', vocabSize: 1 }),
      /makeTinyT5 options: field "eos_token_id"/,
    );
    assert.throws(() => makeTinyT5({ variant: 'v1', dModel: 0 }), /field "d_model" must be >= 1/);
  });

  test('writer refuses tensors that do not match the config', () => {
    const { config, tensors } = makeTinyT5({ variant: 'v1', seed: 1 });
    const missing = new Map(tensors);
    missing.delete('encoder.final_layer_norm.weight');
    checkpointError(
      () => writeT5Checkpoint(freshDir('w'), config, missing),
      /missing "encoder.final_layer_norm.weight" \[16\]/,
    );
    const extra = new Map(tensors).set('lm_head.weight', { shape: [128, 16], data: new Float32Array(2048) });
    checkpointError(
      () => writeT5Checkpoint(freshDir('w'), config, extra),
      /unexpected tensor "lm_head.weight"/,
    );
  });
});

describe('planShards', () => {
  test('greedy split like huggingface_hub; oversized tensors get their own shard', () => {
    const plan = planShards(
      [
        ['a', 40],
        ['b', 50],
        ['c', 30],
        ['big', 500],
        ['d', 60],
        ['e', 100],
      ],
      100,
    );
    assert.deepEqual(plan, [['a', 'b'], ['big'], ['c', 'd'], ['e']]);
  });
});

describe('loadT5Checkpoint errors', () => {
  const write = (variant: 'v1' | 'v1.1', shardBytes?: number) => {
    const dir = freshDir(`err-${variant}`);
    const { config, tensors } = makeTinyT5({ variant, seed: 2 });
    writeT5Checkpoint(dir, config, tensors, shardBytes ? { shardBytes } : {});
    return dir;
  };

  test('missing tensor names the tensor and the file', () => {
    const dir = write('v1');
    const file = path.join(dir, 'model.safetensors');
    editFile(file, (m) => m.delete('decoder.block.1.layer.1.EncDecAttention.k.weight'));
    const e = checkpointError(
      () => loadT5Checkpoint(dir),
      /1 tensor\(s\) missing from model\.safetensors: decoder\.block\.1\.layer\.1\.EncDecAttention\.k\.weight/,
    );
    assert.equal(e.tensor, 'decoder.block.1.layer.1.EncDecAttention.k.weight');
    assert.equal(e.dir, dir);
  });

  test('a streamed load checks the whole checkpoint before handing over any tensor', () => {
    const dir = write('v1');
    // The last tensor in the file's order is the one missing: nothing may be handed over before that is found.
    editFile(path.join(dir, 'model.safetensors'), (m) => m.delete([...m.keys()].sort().at(-1)!));
    let handed = 0;
    checkpointError(() => loadT5Checkpoint(dir, { onTensor: () => handed++ }), /1 tensor\(s\) missing/);
    assert.equal(handed, 0);
  });

  test('an encoder-only export is recognised', () => {
    const dir = write('v1');
    editFile(path.join(dir, 'model.safetensors'), (m) => {
      for (const k of [...m.keys()]) if (k.startsWith('decoder.')) m.delete(k);
    });
    checkpointError(() => loadT5Checkpoint(dir), /T5EncoderModel/);
  });

  test('wrong shape names the tensor, the file, both shapes and the config fields to check', () => {
    const dir = write('v1.1');
    const file = path.join(dir, 'model.safetensors');
    editFile(file, (m) =>
      m.set('encoder.block.1.layer.1.DenseReluDense.wi_1.weight', {
        dtype: 'F32',
        shape: [16, 32],
        data: new Float32Array(512),
      }),
    );
    checkpointError(
      () => loadT5Checkpoint(dir),
      new RegExp(
        `${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: tensor "encoder\\.block\\.1\\.layer\\.1\\.DenseReluDense\\.wi_1\\.weight" ` +
          'has shape \\[16, 32\\] but config\\.json implies \\[32, 16\\][\\s\\S]*d_ff',
      ),
    );
  });

  test('config that disagrees with the weights (d_ff) lists every mismatch', () => {
    const dir = write('v1');
    const cfgFile = path.join(dir, 'config.json');
    const json = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    fs.writeFileSync(cfgFile, JSON.stringify({ ...json, d_ff: 64 }));
    const e = checkpointError(
      () => loadT5Checkpoint(dir),
      /has shape \[32, 16\] but config\.json implies \[64, 16\]/,
    );
    // 2 feed-forward matrices in each of the 4 blocks.
    assert.equal(e.message.match(/but config\.json implies/g)?.length, 8);
  });

  test('sharded index with a missing shard names the shard and what it held', () => {
    const dir = write('v1.1', 3000);
    const shards = loadT5Checkpoint(dir).files;
    const n = String(shards.length).padStart(5, '0');
    fs.rmSync(path.join(dir, `model-00002-of-${n}.safetensors`));
    const e = checkpointError(
      () => loadT5Checkpoint(dir),
      new RegExp(
        `lists 1 of ${shards.length} shard files that are not in .*: model-00002-of-${n}\\.safetensors ` +
          '\\(\\d+ tensors, e\\.g\\. [\\w.]+\\)\\. The download is incomplete',
      ),
    );
    assert.equal(e.file, path.join(dir, `model-00002-of-${n}.safetensors`));
  });

  test('index pointing at a tensor its shard lacks', () => {
    const dir = write('v1.1', 3000);
    const indexFile = path.join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
    const other = index.weight_map['decoder.final_layer_norm.weight'];
    assert.notEqual(other, index.weight_map['shared.weight']);
    index.weight_map['shared.weight'] = other;
    fs.writeFileSync(indexFile, JSON.stringify(index));
    // shared.weight now sits in a shard the index no longer maps it to.
    checkpointError(
      () => loadT5Checkpoint(dir),
      new RegExp(
        `maps tensor "shared\\.weight" to ${other.replace(/\./g, '\\.')}, but that file has no such tensor`,
      ),
    );
    index.weight_map['shared.weight'] = '../outside.safetensors';
    fs.writeFileSync(indexFile, JSON.stringify(index));
    checkpointError(() => loadT5Checkpoint(dir), /points outside the checkpoint folder/);
  });

  test('truncated weight file is reported with the folder and a fix', () => {
    const dir = write('v1');
    const file = path.join(dir, 'model.safetensors');
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 100));
    const e = checkpointError(() => loadT5Checkpoint(dir), /truncated file.*re-download or re-export/);
    assert.equal(e.file, file);
  });

  test('folder without safetensors: pytorch_model.bin gets conversion advice; nothing gets download advice', () => {
    const dir = write('v1');
    fs.rmSync(path.join(dir, 'model.safetensors'));
    checkpointError(
      () => loadT5Checkpoint(dir),
      /neither model\.safetensors nor model\.safetensors\.index\.json/,
    );
    fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'x');
    checkpointError(() => loadT5Checkpoint(dir), /pytorch_model\.bin\) only.*safe_serialization=True/);
  });

  test('config problems: missing folder, missing/invalid config.json', () => {
    checkpointError(() => loadT5Checkpoint(path.join(tmp, 'does-not-exist')), /no such folder/);
    const dir = write('v1');
    const cfgFile = path.join(dir, 'config.json');
    fs.writeFileSync(cfgFile, '{"d_model": 16,');
    checkpointError(() => loadT5Checkpoint(dir), /config\.json: not valid JSON/);
    fs.writeFileSync(cfgFile, JSON.stringify({ d_model: 16, feed_forward_proj: 'silu' }));
    const e = checkpointError(() => loadT5Checkpoint(dir), /config\.json: field "feed_forward_proj"/);
    assert.equal(e.file, cfgFile);
    fs.rmSync(cfgFile);
    checkpointError(() => loadT5Checkpoint(dir), /config\.json: cannot read/);
  });

  test('aliases are skipped, extras warned about, shared.weight falls back to embed_tokens, int weights rejected', () => {
    const dir = write('v1');
    const file = path.join(dir, 'model.safetensors');
    const shared = makeTinyT5({ variant: 'v1', seed: 2 }).tensors.get('shared.weight')!;
    editFile(file, (m) => {
      const s = m.get('shared.weight')!;
      m.set('encoder.embed_tokens.weight', s);
      m.set('decoder.embed_tokens.weight', s);
      m.set('lm_head.weight', s);
      m.set('encoder.block.0.extra', { dtype: 'F32', shape: [1], data: Float32Array.from([1]) });
    });
    const loaded = loadT5Checkpoint(dir);
    assert.deepEqual(loaded.warnings, [
      `${file}: unexpected tensor "encoder.block.0.extra" is not part of T5; ignored`,
    ]);
    assert.equal(loaded.tensors.has('lm_head.weight'), false);

    editFile(file, (m) => m.delete('shared.weight'));
    const fallback = loadT5Checkpoint(dir);
    assert.ok(bytesOf(fallback.tensors.get('shared.weight')!).equals(bytesOf(shared)));
    assert.ok(
      fallback.warnings.some(
        (w) =>
          w.includes('using its tied copy "decoder.embed_tokens.weight"') ||
          w.includes('"encoder.embed_tokens.weight"'),
      ),
    );

    const contents = readSafetensors(file);
    contents.tensors.set('encoder.final_layer_norm.weight', {
      dtype: 'I32',
      shape: [16],
      data: new Int32Array(16),
    });
    fs.writeFileSync(file, encodeSafetensors(contents.tensors));
    checkpointError(() => loadT5Checkpoint(dir), /"encoder\.final_layer_norm\.weight" has dtype I32/);
  });

  test('bf16 and f16 checkpoints load as float32', () => {
    const dir = write('v1.1');
    const file = path.join(dir, 'model.safetensors');
    const contents = readSafetensors(file);
    const half = new Map(
      [...contents.tensors].map(([n, t]) => [
        n,
        { ...t, dtype: n.startsWith('encoder') ? ('BF16' as const) : ('F16' as const) },
      ]),
    );
    writeSafetensors(file, half);
    const loaded = loadT5Checkpoint(dir);
    const orig = contents.tensors.get('encoder.block.0.layer.0.SelfAttention.q.weight')!.data as Float32Array;
    const got = loaded.tensors.get('encoder.block.0.layer.0.SelfAttention.q.weight')!.data;
    assert.ok(got.every((x, i) => Math.abs(x - orig[i]!) <= Math.abs(orig[i]!) * 2 ** -8));
    assert.ok(
      got.some((x, i) => x !== orig[i]),
      'values were really rounded to bf16',
    );
  });

  test('include loads only the selected tensors', () => {
    const dir = write('v1.1', 3000);
    const loaded = loadT5Checkpoint(dir, { include: (n) => n === 'shared.weight' });
    assert.deepEqual([...loaded.tensors.keys()], ['shared.weight']);
    assert.deepEqual(loaded.tensors.get('shared.weight')!.shape, [128, 16]);
  });
});
