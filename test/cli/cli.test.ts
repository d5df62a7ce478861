import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { commands } from '../../src/cli/commands/index.js';
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
    const base = ['coordinator', '--nats', 'nats://127.0.0.1:1', '--bank', bank, '--token', 't'];
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
  assert.equal(count('--method', 'attempt').total, 230_400);
  assert.equal(count('--method', 'attempt', '--trainable-layernorm').total, 231_936);
  assert.equal(count('--method', 'attempt', '--tasks', '8', '--trainable-layernorm').perTask, 96_192);
  assert.equal(count('--method', 'tpt').perTask, 76_800);
  assert.equal(count('--method', 'tpt', '--tune-bank').perTask, 537_600);
});
