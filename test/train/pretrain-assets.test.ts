import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { DEMO_LABEL_WORDS, DEMO_TASKS } from '../../src/data/demo/index.js';
import { loadT5Checkpoint } from '../../src/model/checkpoint/index.js';
import { loadTokenizer } from '../../src/model/tokenizer/index.js';

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
});
