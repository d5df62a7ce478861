import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { PRETRAIN_DEFAULTS } from '../../src/cli/commands/pretrain.js';
import { DEFAULT_DEMO_SEED, DEMO_LABEL_WORDS, DEMO_TASKS } from '../../src/data/demo/index.js';
import { loadT5Checkpoint } from '../../src/model/checkpoint/index.js';
import { loadT5Model } from '../../src/model/load-t5.js';
import { loadTokenizer } from '../../src/model/tokenizer/index.js';
import { demoSourceProbe } from '../../src/train/pretrain/index.js';

const DIR = path.join(process.cwd(), 'assets', 'demo-backbone');

describe('shipped demo backbone (assets/demo-backbone)', () => {
  test('loads with loadT5Checkpoint and loadTokenizer; sizes agree; stays small', async () => {
    const ckpt = loadT5Checkpoint(DIR);
    assert.deepEqual(ckpt.warnings, []);
    const fromJson = await loadTokenizer(path.join(DIR, 'tokenizer.json'));
    const fromSpm = await loadTokenizer(path.join(DIR, 'spiece.model'));
    assert.equal(fromJson.vocabSize, ckpt.config.vocabSize);
    assert.equal(fromSpm.vocabSize, ckpt.config.vocabSize);
    assert.equal(fromJson.extraIds, 100);
    const bytes = fs.readdirSync(DIR).reduce((n, f) => n + fs.statSync(path.join(DIR, f)).size, 0);
    assert.ok(bytes < 5 * 1024 * 1024, `assets/demo-backbone is ${bytes} bytes`);
  });

  test('every demo label word is a single token, the same from tokenizer.json and spiece.model', async () => {
    const tok = await loadTokenizer(path.join(DIR, 'tokenizer.json'));
    const spm = await loadTokenizer(path.join(DIR, 'spiece.model'));
    for (const w of DEMO_LABEL_WORDS) {
      const ids = tok.encode(w, { addEos: false });
      assert.equal(
        ids.length,
        1,
        `label word '${w}' is ${ids.length} tokens: ${ids.map((i) => tok.idToPiece(i))}`,
      );
      assert.deepEqual(spm.encode(w, { addEos: false }), ids);
    }
    // Label words stay whole inside sentences too (they follow a space there).
    const ids = tok.encode('overall it was good .', { addEos: false });
    assert.ok(ids.includes(tok.encode('good', { addEos: false })[0]!));
    assert.ok(DEMO_TASKS.length > 0);
  });

  test('it has learned the skills the targets share with the sources, as its pretrain.json records', async (t) => {
    // The demo is only meaningful if prompt tuning has a skill to steer. The recorded probe is re-measured on the
    // shipped weights (so the record is true of this folder) and must show demo-sentiment (the skill of
    // demo-dining), demo-topic, arithmetic, QA and entailment learned. A change to the demo generator that the
    // backbone was not retrained for shows up here as a drop.
    const record = JSON.parse(fs.readFileSync(path.join(DIR, 'pretrain.json'), 'utf8')) as {
      sourceAccuracy: { step: number; scores: Record<string, number> }[];
    };
    const recorded = record.sourceAccuracy.at(-1)!.scores;
    await selectBackend({ requested: 'wasm', log: () => {} });
    const tokenizer = await loadTokenizer(DIR);
    const { model } = loadT5Model(DIR);
    try {
      const probe = demoSourceProbe(tokenizer, {
        seed: DEFAULT_DEMO_SEED,
        examples: PRETRAIN_DEFAULTS.probeExamples,
        maxSourceTokens: PRETRAIN_DEFAULTS.maxSourceTokens,
      });
      // The first pass fills the frozen model's bounded per-shape position-bias cache; a second pass over the
      // same shapes must allocate nothing that outlives it, and must measure the same.
      const measured = probe(model);
      t.diagnostic(
        `probe accuracy: ${Object.entries(measured)
          .map(([task, acc]) => `${task} ${acc.toFixed(3)}`)
          .join(', ')}`,
      );
      const before = tf.memory().numTensors;
      assert.deepEqual(probe(model), measured, 'the probe is not deterministic');
      assert.equal(tf.memory().numTensors, before, 'the probe leaked tensors');
      assert.deepEqual(Object.keys(measured).sort(), Object.keys(recorded).sort());
      for (const [task, acc] of Object.entries(measured)) {
        assert.ok(
          Math.abs(acc - recorded[task]!) <= 0.03,
          `${task}: measured ${acc}, recorded ${recorded[task]}`,
        );
      }
      assert.ok(measured['demo-sentiment']! >= 0.8, `demo-sentiment ${measured['demo-sentiment']}`);
      assert.ok(measured['demo-topic']! >= 0.9, `demo-topic ${measured['demo-topic']}`);
      // Stages 2 and 3 of the recipe (assets/demo-backbone/README.md) are what taught the skills demo-count and
      // demo-entail need: arithmetic (the count target's sums), extractive QA and entailment, well above chance
      // (~5, ~25, 33). Stage 2 alone left entailment at 62%, and prompt tuning on demo-entail did not learn then.
      assert.ok(measured['demo-arithmetic']! >= 0.9, `demo-arithmetic ${measured['demo-arithmetic']}`);
      assert.ok(measured['demo-qa']! >= 0.5, `demo-qa ${measured['demo-qa']}`);
      assert.ok(measured['demo-nli']! >= 0.8, `demo-nli ${measured['demo-nli']}`);
    } finally {
      model.dispose();
    }
  });
});
