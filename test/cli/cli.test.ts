import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { backboneParameterCount } from '../../src/cli/commands/describe.js';
import { commands } from '../../src/cli/commands/index.js';
import { demoJob } from '../../src/config/demo-job.js';
import { demoBackboneDir } from '../../src/config/paths.js';
import { loadT5Checkpoint } from '../../src/model/checkpoint/index.js';
import { loadT5Model } from '../../src/model/load-t5.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const MAIN = path.resolve('dist/src/cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
const dir = writeTinyCheckpoint({ variant: 'v1.1', seed: 11, vocabSize: 64 });
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('every command has --help with usage, options and an example', () => {
  for (const c of commands) {
    const r = run(...c.path, '--help');
    assert.equal(r.status, 0, `${c.path.join(' ')} --help failed: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`Usage: promptmesh ${c.path.join(' ')}`));
    assert.match(r.stdout, /Options:/);
    assert.ok((c.examples?.length ?? 0) > 0, `${c.path.join(' ')} has no example`);
  }
  const top = run('--help');
  assert.equal(top.status, 0);
  for (const c of commands) assert.ok(top.stdout.includes(c.path.join(' ')));
});

test('unknown commands and bad flags explain themselves', () => {
  const r = run('trian');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command 'trian'/);
  const bad = run('model', 'run', '--checkpoint', dir, '--input-ids', '1,x');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--input-ids: 'x' is not an integer/);
});

test('coordinator: flags win over env vars, and a malformed env var is a usage error naming it', () => {
  const bank = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
  try {
    const base = [
      'coordinator',
      '--nats',
      'nats://127.0.0.1:1',
      '--bank',
      bank,
      '--token',
      'cli-test-token-0123456789',
    ];
    const env = (extra: Record<string, string>) => ({ ...process.env, ...extra });
    const bad = spawnSync(process.execPath, [MAIN, ...base], {
      encoding: 'utf8',
      env: env({ PROMPTMESH_MIN_WORKERS: 'two' }),
    });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /PROMPTMESH_MIN_WORKERS expects an integer, got 'two'/);
    // With the env var winning, 5 > --max-workers 2 would be refused before connecting; the flag wins, so the
    // coordinator gets as far as NATS (nothing listens on port 1).
    const r = spawnSync(process.execPath, [MAIN, ...base, '--min-workers', '1', '--max-workers', '2'], {
      encoding: 'utf8',
      env: env({ PROMPTMESH_MIN_WORKERS: '5' }),
      timeout: 20_000,
    });
    assert.doesNotMatch(r.stderr, /min-workers/);
    assert.match(r.stderr, /cannot connect to NATS at nats:\/\/127\.0\.0\.1:1/);
  } finally {
    fs.rmSync(bank, { recursive: true, force: true });
  }
});

test('model run prints encoder states and logits per position at full precision, equal to the library', async () => {
  const r = run(
    'model',
    'run',
    '--checkpoint',
    dir,
    '--input-ids',
    '13,7,1',
    '--decoder-input-ids',
    '0,5',
    '--json',
    // The library below runs on wasm; the same backend makes "equal" exact (native vs wasm: reference-parity.test).
    '--backend',
    'wasm',
  );
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { encoderHiddenStates: number[][]; logits: number[][] };
  assert.equal(out.encoderHiddenStates.length, 3);
  assert.equal(out.encoderHiddenStates[0]!.length, 16);
  assert.equal(out.logits.length, 2);
  assert.equal(out.logits[0]!.length, 64);
  await selectBackend({ requested: 'wasm' });
  const { model } = loadT5Model(dir);
  const [enc, logits] = tf.tidy(() => {
    const mask = tf.ones([1, 3]) as tf.Tensor2D;
    const e = model.encode(model.embed(tf.tensor2d([[13, 7, 1]], [1, 3], 'int32')), mask);
    return [
      e.arraySync() as number[][][],
      model
        .lmLogits(model.decode(tf.tensor2d([[0, 5]], [1, 2], 'int32'), e, mask))
        .arraySync() as number[][][],
    ];
  });
  assert.deepEqual(out.encoderHiddenStates, enc![0]);
  assert.deepEqual(out.logits, logits![0]);
  model.dispose();
  const outside = run('model', 'run', '--checkpoint', dir, '--input-ids', '64');
  assert.equal(outside.status, 2);
  assert.match(outside.stderr, /id 64 is outside the vocabulary \[0, 64\)/);
});

test("describe reproduces the papers' parameter counts for t5-base", () => {
  const count = (...args: string[]) => {
    const r = run('describe', '--d-model', '768', '--json', ...args);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { perTask: number; total: number };
  };
  assert.equal(count('--method', 'prompt-tuning').total, 76_800);
  // The paper's 232K counts the attention LayerNorm (the default, as in a job config); the released code freezes it.
  assert.equal(count('--method', 'attempt').total, 231_936);
  assert.equal(count('--method', 'attempt', '--trainable-layernorm').total, 231_936);
  assert.equal(count('--method', 'attempt', '--frozen-layernorm').total, 230_400);
  assert.equal(count('--method', 'attempt', '--tasks', '8').perTask, 96_192);
  const both = run('describe', '--method', 'attempt', '--frozen-layernorm', '--trainable-layernorm');
  assert.equal(both.status, 2);
  assert.match(both.stderr, /not both/);
  assert.equal(count('--method', 'tpt').perTask, 76_800);
  assert.equal(count('--method', 'tpt', '--tune-bank').perTask, 537_600);
});

test('describe --config: every stage, each tensor with its shape, per task, total and share of the backbone, from config.json alone', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-describe-'));
  try {
    // A t5-base folder with config.json and no weights: describe must not need them.
    const base = path.join(tmp, 't5-base');
    fs.mkdirSync(base);
    fs.writeFileSync(
      path.join(base, 'config.json'),
      JSON.stringify({
        model_type: 't5',
        d_model: 768,
        d_kv: 64,
        d_ff: 3072,
        num_heads: 12,
        num_layers: 12,
        num_decoder_layers: 12,
        relative_attention_num_buckets: 32,
        feed_forward_proj: 'relu',
        vocab_size: 32128,
      }),
    );
    const job = path.join(tmp, 'job.json');
    fs.writeFileSync(job, JSON.stringify({ ...demoJob(), backbone: { checkpoint: base } }));
    const r = run('describe', '--config', job, '--json');
    assert.equal(r.status, 0, r.stderr);
    const [sources, targets] = JSON.parse(r.stdout) as {
      stage: string;
      tensors: { name: string; shape: number[]; trainable: boolean; count: number }[];
      perTask: number;
      total: number;
      percentOfBackbone: number;
    }[];
    assert.equal(sources!.stage, 'sources');
    assert.equal(sources!.tensors.length, 6);
    for (const t of sources!.tensors) assert.deepEqual(t.shape, [10, 768], t.name);
    assert.equal(sources!.perTask, 7_680);
    assert.equal(sources!.total, 46_080);
    // t5-base has 222,903,552 parameters (tied embeddings, as Hugging Face counts it).
    assert.ok(Math.abs(sources!.percentOfBackbone - (100 * 46_080) / 222_903_552) < 1e-12);
    const byName = new Map(targets!.tensors.map((t) => [t.name, t]));
    assert.deepEqual(byName.get('attention.down')?.shape, [768, 16]);
    assert.deepEqual(byName.get('target.demo-dining')?.shape, [10, 768]);
    assert.equal(byName.get('source.prompt.demo-topic')?.trainable, false);
    assert.equal(targets!.total, 3 * 7_680 + 2 * 768 * 16 + 2 * 768);
    const text = run('describe', '--config', job);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /stage targets: method attempt/);
    assert.match(text.stdout, /trainable per task: 16,384 \(over 3 tasks\)/);
    assert.match(text.stdout, /share of backbone: {2}0\.0221%/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test("the backbone count describe uses equals the shipped demo backbone's weights, tensor by tensor summed", () => {
  const ckpt = loadT5Checkpoint(demoBackboneDir());
  let sum = 0;
  for (const t of ckpt.tensors.values()) sum += t.data.length;
  assert.equal(backboneParameterCount(ckpt.config), sum);
});
