import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DirectoryStore, type Manifest, PromptBank } from '../../src/bank/index.js';
import { cli } from '../helpers/cli.js';
import { tensor } from './bank-suite.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const mainJs = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');

describe('promptmesh bank CLI', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
  const root = path.join(tmp, 'bank');
  let v1: Manifest;
  let v2: Manifest;
  before(async () => {
    const bank = new PromptBank(new DirectoryStore(root));
    v1 = await bank.commit({
      job: 'demo',
      parent: null,
      step: 10,
      method: 'prompt-tuning',
      tensors: { 'prompt.a': tensor([4, 8], 1), 'prompt.b': tensor([4, 8], 2) },
      metrics: { loss: 2, accuracy: 200 / 3 },
    });
    v2 = await bank.commit({
      job: 'demo',
      parent: v1.id,
      step: 20,
      method: 'prompt-tuning',
      tensors: { 'prompt.a': tensor([4, 8], 3), 'prompt.b': tensor([4, 8], 2) },
      metrics: { loss: 1, accuracy: 500 / 7 },
    });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('`promptmesh bank ls --bank DIR --json` (a real process) prints the versions with id and step', () => {
    const r = spawnSync(process.execPath, [mainJs, 'bank', 'ls', '--bank', root, '--json'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const list = JSON.parse(r.stdout) as { id: string; step: number; head: boolean }[];
    assert.deepEqual(
      list.map((v) => [v.id, v.step, v.head]),
      [
        [v2.id, 20, true],
        [v1.id, 10, false],
      ],
    );
  });

  test('ls text output marks the head; a missing bank directory is an error, not a new bank', async () => {
    const r = await cli('bank', 'ls', '--bank', root);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`${v2.id.slice(0, 12)}\\*\\s+demo\\s+20`));
    const missing = path.join(tmp, 'nope');
    const m = await cli('bank', 'ls', '--bank', missing);
    assert.equal(m.code, 1);
    assert.match(m.stderr, /no bank at/);
    assert.equal(fs.existsSync(missing), false);
    const none = await cli('bank', 'ls');
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--bank DIR/);
  });

  test('show, diff, tag', async () => {
    const s = await cli('bank', 'show', '--bank', root, 'demo@head', '--verify', '--json');
    assert.equal(s.code, 0, s.stderr);
    assert.equal((JSON.parse(s.stdout) as Manifest).id, v2.id);
    const d = await cli('bank', 'diff', '--bank', root, v1.id.slice(0, 8), v2.id, '--json');
    assert.equal(d.code, 0, d.stderr);
    const diff = JSON.parse(d.stdout) as { changed: { name: string; l2: number }[]; unchanged: string[] };
    assert.deepEqual(
      diff.changed.map((c) => c.name),
      ['prompt.a'],
    );
    assert.ok(diff.changed[0] && diff.changed[0].l2 > 0);
    assert.deepEqual(diff.unchanged, ['prompt.b']);
    const text = await cli('bank', 'diff', '--bank', root, v1.id, v2.id);
    assert.match(text.stdout, /~ prompt\.a L2 /);
    assert.match(text.stdout, /loss: 2 -> 1 \(-1\.000\)/);
    // Scores are rounded as `bank ls` rounds them (one formatter).
    assert.match(text.stdout, /accuracy: 66\.67 -> 71\.43 \(\+4\.762\)/);
    assert.match((await cli('bank', 'ls', '--bank', root)).stdout, /accuracy=66\.67/);
    const help = await cli('bank', 'diff', '--help');
    assert.match(help.stdout, /VERSION_A VERSION_B\s{2,}the two versions to compare/);
    assert.equal((await cli('bank', 'tag', '--bank', root, v1.id, 'first')).code, 0);
    const moved = await cli('bank', 'tag', '--bank', root, v2.id, 'first');
    assert.equal(moved.code, 1);
    assert.match(moved.stderr, /TagExistsError.*force/);
    const shown = await cli('bank', 'show', '--bank', root, 'first');
    assert.match(shown.stdout, new RegExp(`version\\s+${v1.id}`));
  });

  test('export, import (wrong shape refused with both shapes), compose, gc', async () => {
    const out = path.join(tmp, 'export');
    assert.equal((await cli('bank', 'export', '--bank', root, v2.id, '--out', out)).code, 0);
    assert.ok(fs.existsSync(path.join(out, 'tensors.safetensors')));
    const bad = await cli('bank', 'import', '--bank', root, out, '--job', 'imp', '--d-model', '512');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /ShapeMismatchError: tensor 'prompt\.a'.*\[4, 8\].*512/);
    const good = await cli('bank', 'import', '--bank', root, out, '--job', 'imp', '--d-model', '8', '--json');
    assert.equal(good.code, 0, good.stderr);
    const imported = JSON.parse(good.stdout) as Manifest;
    assert.equal(imported.step, 20);
    const c = await cli(
      'bank',
      'compose',
      '--bank',
      root,
      '--job',
      'attempt2',
      '--base',
      'imp@head',
      '--drop',
      'prompt.b',
      '--take',
      `${v1.id.slice(0, 10)}:prompt.a=source.old`,
      '--json',
    );
    assert.equal(c.code, 0, c.stderr);
    const composed = JSON.parse(c.stdout) as Manifest;
    assert.deepEqual(Object.keys(composed.tensors).sort(), ['prompt.a', 'source.old']);
    assert.equal(composed.tensors['source.old']?.digest, v1.tensors['prompt.a']?.digest);
    const g = await cli('bank', 'gc', '--bank', root, '--grace', '0', '--json');
    assert.equal(g.code, 0, g.stderr);
    assert.equal(
      (JSON.parse(g.stdout) as { blobsDeleted: number }).blobsDeleted,
      0,
      'every blob is referenced',
    );
    const ls = await cli('bank', 'ls', '--bank', root, '--json');
    assert.equal((JSON.parse(ls.stdout) as unknown[]).length, 4);
  });
});
