/**
 * src/generated/ is what `npm run proto` makes from proto/ today: regenerating gives the same files, byte for byte,
 * and a hand edit (or a .proto changed without regenerating) is caught and named.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const script = path.join(root, 'scripts', 'gen-proto.mjs');

function gen(...args: string[]) {
  return spawnSync(process.execPath, [script, ...args], { cwd: root, encoding: 'utf8' });
}

describe('generated protobuf code', () => {
  test('regenerating from proto/ gives the committed src/generated/, file for file', () => {
    const r = gen('--check');
    assert.equal(r.status, 0, r.stderr);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promptmesh-proto-'));
    try {
      assert.equal(gen('--out', tmp).status, 0);
      const committed = fs.readdirSync(path.join(root, 'src', 'generated')).sort();
      assert.deepEqual(fs.readdirSync(tmp).sort(), committed);
      for (const name of committed) {
        assert.equal(
          fs.readFileSync(path.join(tmp, name), 'utf8'),
          fs.readFileSync(path.join(root, 'src', 'generated', name), 'utf8'),
          name,
        );
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('a hand edit, a missing file and a stray file are each named', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'promptmesh-proto-'));
    try {
      assert.equal(gen('--out', tmp).status, 0);
      const edited = path.join(tmp, 'collective.ts');
      fs.writeFileSync(
        edited,
        fs.readFileSync(edited, 'utf8').replace('FRAME_KIND_DATA: 1', 'FRAME_KIND_DATA: 4'),
      );
      fs.rmSync(path.join(tmp, 'sentencepiece-model.ts'));
      fs.writeFileSync(path.join(tmp, 'extra.ts'), '');
      const r = gen('--check', '--out', tmp);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /collective\.ts differs from what collective\.proto gives/);
      assert.match(r.stderr, /sentencepiece-model\.ts is missing/);
      assert.match(r.stderr, /extra\.ts comes from no \.proto/);
      assert.match(r.stderr, /npm run proto/);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
