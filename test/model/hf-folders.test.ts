/**
 * Every Hugging Face folder promptmesh writes (writeT5Checkpoint: the tiny-checkpoint script, `pretrain`'s output,
 * the shipped demo backbone) loads in the real transformers exactly as written, agrees with `promptmesh model run`,
 * and its tokenizer gives promptmesh's ids. Skips with a message when python3 lacks torch or transformers
 * (`bash scripts/setup.sh --python-peers` installs them).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const MAIN = path.resolve('dist/src/cli/main.js');
const CHECK = path.resolve('test/helpers/hf_load_check.py');
const DEMO = path.resolve('assets/demo-backbone');

function pythonPeers(): string | undefined {
  const r = spawnSync('python3', ['-c', 'import torch, transformers'], { encoding: 'utf8' });
  return r.status === 0
    ? undefined
    : `python3 cannot import torch and transformers (bash scripts/setup.sh --python-peers installs them): ${r.stderr.trim().split('\n').at(-1)}`;
}

function cli(...args: string[]): string {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PROMPTMESH_BACKEND: 'wasm' },
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

interface Loaded {
  types: Record<string, string>;
  logits: number[][];
  tokenizer?: string;
  ids?: number[][];
}

function loadInTransformers(dir: string, ids: string, dec: string, texts: string[] = []): Loaded {
  const r = spawnSync(
    'python3',
    [CHECK, dir, '--input-ids', ids, '--decoder-input-ids', dec, ...texts.flatMap((t) => ['--text', t])],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, `transformers refused ${dir}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as Loaded;
}

function maxAbsDiff(a: number[][], b: number[][]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.flatMap((row, i) => row.map((x, j) => Math.abs(x - b[i]![j]!))));
}

test('config.json keeps float fields floats (transformers refuses initializer_factor: 1)', () => {
  const dir = writeTinyCheckpoint({ variant: 'v1', vocabSize: 32, dModel: 8, seed: 3 });
  try {
    const text = fs.readFileSync(path.join(dir, 'config.json'), 'utf8');
    assert.match(text, /"initializer_factor": 1\.0,/);
    assert.match(text, /"dropout_rate": 0\.1,/);
    assert.deepEqual(Object.keys(JSON.parse(text)).sort(), Object.keys(JSON.parse(text)));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('folders promptmesh writes load in transformers unpatched and agree with model run', {
  skip: pythonPeers(),
}, (t) => {
  const v1 = writeTinyCheckpoint({ variant: 'v1', vocabSize: 40, dModel: 16, seed: 11 });
  const v11 = writeTinyCheckpoint({ variant: 'v1.1', vocabSize: 40, dModel: 16, seed: 12 });
  try {
    for (const [name, dir, ids, dec] of [
      ['tiny checkpoint (v1, tied)', v1, '5,9,13,1', '0,4,7'],
      ['tiny checkpoint (v1.1, gated-gelu)', v11, '5,9,13,1', '0,4,7'],
      ['demo backbone', DEMO, '13,7,42,99,5,1', '0,5,17,3'],
    ] as const) {
      const hf = loadInTransformers(dir, ids, dec);
      assert.deepEqual(hf.types, {
        initializer_factor: 'float',
        dropout_rate: 'float',
        layer_norm_epsilon: 'float',
      });
      const ours = JSON.parse(
        cli('model', 'run', '--checkpoint', dir, '--input-ids', ids, '--decoder-input-ids', dec, '--json'),
      ) as { logits: number[][] };
      const d = maxAbsDiff(ours.logits, hf.logits);
      t.diagnostic(`${name}: max |logits(promptmesh) - logits(transformers)| = ${d.toExponential(2)}`);
      assert.ok(d < 1e-4, `${name}: logits differ by ${d}`);
    }
  } finally {
    for (const dir of [v1, v11]) fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the demo backbone's tokenizer in transformers gives promptmesh's ids", { skip: pythonPeers() }, () => {
  const texts = ['the food was good', 'two plus three is five', 'Does the premise entail it?'];
  const hf = loadInTransformers(DEMO, '1', '0', texts);
  const ours = cli('tokenize', '--tokenizer', DEMO, '--json', ...texts)
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { ids: number[] }).ids);
  assert.deepEqual(hf.ids, ours, `transformers' ${hf.tokenizer} differs from promptmesh tokenize`);
});
