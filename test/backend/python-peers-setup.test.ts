/**
 * scripts/python-peers.sh, the installer of the Python references (PyTorch, transformers, safetensors, peft): a
 * run where they import changes nothing, and each way it can fail is one line with the reason, exit 0 (the parity
 * tests then skip, saying so), or exit 1 when PROMPTMESH_REQUIRE_PEERS=1 (CI). Failures are provoked with a
 * stand-in pip and python, so nothing is installed or removed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';

const SCRIPT = path.resolve('scripts/python-peers.sh');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-peers-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function stub(name: string, body: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}

// A python that cannot import anything, and a pip that runs but finds no wheel (as a mirror without torch would).
const noModules = stub('python', 'exit 1');
const pipNoWheel = stub(
  'pip',
  '[ "$1" = --version ] && exit 0\necho "ERROR: No matching distribution found for torch" >&2\nexit 1',
);
const pipOk = stub('pip-ok', 'exit 0');

function run(env: Record<string, string>) {
  const r = spawnSync('bash', [SCRIPT], {
    encoding: 'utf8',
    env: { ...process.env, PROMPTMESH_REQUIRE_PEERS: '0', ...env },
  });
  return { status: r.status, err: r.stderr.trim() };
}

const peersHere =
  spawnSync('python3', ['-c', 'import torch, transformers, safetensors, peft'], { stdio: 'ignore' })
    .status === 0
    ? undefined
    : 'the Python peers are not installed here (bash scripts/setup.sh --python-peers)';

test('peers that import already: nothing to do, no output, exit 0', { skip: peersHere }, () => {
  const r = run({ PIP: pipNoWheel });
  assert.equal(r.status, 0);
  assert.equal(r.err, '');
});

test("pip finds no wheel: one line with pip's error; exit 0, or 1 when the peers are required", () => {
  for (const [required, status] of [
    ['0', 0],
    ['1', 1],
  ] as const) {
    const r = run({ PYTHON: noModules, PIP: pipNoWheel, PROMPTMESH_REQUIRE_PEERS: required });
    assert.equal(r.status, status, r.err);
    assert.match(
      r.err,
      /pip could not install torch\/transformers\/safetensors\/peft \(ERROR: No matching distribution found for torch\); the tests that compare with them will skip$/,
    );
  }
});

test('no pip: the reason and the package to install; exit 1 when required', () => {
  const r = run({ PYTHON: noModules, PIP: 'false' });
  assert.equal(r.status, 0);
  assert.match(r.err, /^setup: no pip; .* \(Debian: apt-get install python3-pip\)$/);
  assert.equal(run({ PYTHON: noModules, PIP: 'false', PROMPTMESH_REQUIRE_PEERS: '1' }).status, 1);
});

test('pip says it installed them but they still do not import: that is a failure too', () => {
  const r = run({ PYTHON: noModules, PIP: pipOk, PROMPTMESH_REQUIRE_PEERS: '1' });
  assert.equal(r.status, 1);
  assert.match(r.err, /pip installed the Python peers but .* still fails/);
});
