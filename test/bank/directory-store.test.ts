import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BankLockTimeoutError, DirectoryStore, PromptBank } from '../../src/bank/index.js';
import { defineBankSuite, quietBank, type StoreEnv, tensor } from './bank-suite.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const freshRoot = () => path.join(tmp, `bank-${counter++}`);

function directoryEnv(root: string): StoreEnv {
  const probe = new DirectoryStore(root);
  return {
    open: async () => new DirectoryStore(root),
    corruptBlob: async (digest) => {
      const file = probe.blobPath(digest);
      const bytes = fs.readFileSync(file);
      bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0x01;
      fs.writeFileSync(file, bytes);
    },
    writeRawManifest: async (id, text) => fs.writeFileSync(probe.manifestPath(id), text),
    close: async () => fs.rmSync(root, { recursive: true, force: true }),
  };
}

defineBankSuite('DirectoryStore', async () => directoryEnv(freshRoot()));

const writer = path.join(path.dirname(fileURLToPath(import.meta.url)), 'race-writer.js');

function runWriter(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [writer, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      err += d;
    });
    p.on('exit', (code) =>
      code === 0 ? resolve(out.trim()) : reject(new Error(`writer exited ${code}: ${err}`)),
    );
  });
}

describe('DirectoryStore across processes', () => {
  test('two processes committing on the same head: exactly one wins, the loser leaves nothing visible', async () => {
    const root = freshRoot();
    const { bank } = quietBank(new DirectoryStore(root));
    const job = 'proc-race';
    for (let round = 0; round < 3; round++) {
      const head = await bank.head(job);
      const base = await bank.commit({
        job,
        parent: head?.id ?? null,
        step: 0,
        method: 'm',
        tensors: { p: tensor([3], round) },
      });
      const barrier = path.join(root, `go-${round}`);
      const runs = [
        runWriter([root, job, 'once', base.id, barrier]),
        runWriter([root, job, 'once', base.id, barrier]),
      ];
      await new Promise((r) => setTimeout(r, 300)); // both processes up and polling
      fs.writeFileSync(barrier, '');
      const outcomes = (await Promise.all(runs)).map((l) => JSON.parse(l) as Record<string, string>);
      const won = outcomes.filter((o) => o.won);
      const lost = outcomes.filter((o) => o.lost);
      assert.equal(won.length, 1, JSON.stringify(outcomes));
      assert.equal(lost.length, 1);
      assert.equal(lost[0]?.expected, base.id);
      assert.equal(lost[0]?.actual, won[0]?.won);
      assert.equal((await bank.head(job))?.id, won[0]?.won);
      assert.equal((await bank.head(job))?.parent, base.id);
      assert.equal(fs.existsSync(path.join(root, 'versions', `${lost[0]?.lost}.json`)), false);
    }
  });

  test('two processes committing 15 versions each with retries: a 30-long linear history, nothing lost', async () => {
    const root = freshRoot();
    const { bank } = quietBank(new DirectoryStore(root));
    const job = 'proc-loop';
    const outs = await Promise.all([
      runWriter([root, job, 'loop', '15']),
      runWriter([root, job, 'loop', '15']),
    ]);
    const results = outs.map((l) => JSON.parse(l) as { ids: string[]; conflicts: number });
    const all = results.flatMap((r) => r.ids);
    assert.equal(new Set(all).size, 30);
    const chain: string[] = [];
    for (let m = await bank.head(job); m; m = m.parent ? await bank.get(m.parent) : null) chain.push(m.id);
    assert.equal(chain.length, 30);
    assert.deepEqual(new Set(chain), new Set(all));
    assert.equal((await bank.head(job))?.step, 30);
    assert.equal(
      fs.readdirSync(path.join(root, 'heads')).filter((n) => n.includes('.')).length,
      0,
      'no lock left',
    );
  });
});

describe('DirectoryStore head lock', () => {
  test('a lock left by a dead process on this host is broken at once', async () => {
    const root = freshRoot();
    const store = new DirectoryStore(root, { lock: { timeoutMs: 2000 } });
    const bank = new PromptBank(store);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    const lock = `${store.headPath('job')}.lock`;
    fs.writeFileSync(
      lock,
      JSON.stringify({ pid: Number(dead.stdout), host: os.hostname(), token: 'x', acquiredAt: '' }),
    );
    const t0 = Date.now();
    const v = await bank.commit({
      job: 'job',
      parent: null,
      step: 0,
      method: 'm',
      tensors: { p: tensor([2], 1) },
    });
    assert.ok(Date.now() - t0 < 1500);
    assert.equal((await bank.head('job'))?.id, v.id);
    assert.equal(fs.existsSync(lock), false);
  });

  test('a lock older than the stale timeout is broken (holder on another host)', async () => {
    const root = freshRoot();
    const store = new DirectoryStore(root, { lock: { staleMs: 1000, timeoutMs: 5000 } });
    const bank = new PromptBank(store);
    const lock = `${store.headPath('job')}.lock`;
    fs.writeFileSync(lock, JSON.stringify({ pid: 1, host: 'elsewhere', token: 'x', acquiredAt: '' }));
    const old = new Date(Date.now() - 5000);
    fs.utimesSync(lock, old, old);
    const v = await bank.commit({
      job: 'job',
      parent: null,
      step: 0,
      method: 'm',
      tensors: { p: tensor([2], 1) },
    });
    assert.equal((await bank.head('job'))?.id, v.id);
  });

  test('a fresh lock held by a live process times out with an error naming the holder; the head is unchanged', async () => {
    const root = freshRoot();
    const store = new DirectoryStore(root, { lock: { staleMs: 60_000, timeoutMs: 300 } });
    const bank = new PromptBank(store);
    const v = await bank.commit({
      job: 'job',
      parent: null,
      step: 0,
      method: 'm',
      tensors: { p: tensor([2], 1) },
    });
    const lock = `${store.headPath('job')}.lock`;
    fs.writeFileSync(lock, JSON.stringify({ pid: 1, host: 'elsewhere', token: 'x', acquiredAt: 'then' }));
    await assert.rejects(
      bank.commit({ job: 'job', parent: v.id, step: 1, method: 'm', tensors: { p: tensor([2], 2) } }),
      (e: unknown) => {
        assert.ok(e instanceof BankLockTimeoutError);
        assert.match(e.message, /pid 1 on elsewhere/);
        assert.ok(e.message.includes(lock));
        return true;
      },
    );
    assert.equal((await bank.head('job'))?.id, v.id);
    fs.rmSync(lock);
    const v2 = await bank.commit({
      job: 'job',
      parent: v.id,
      step: 1,
      method: 'm',
      tensors: { p: tensor([2], 2) },
    });
    assert.equal((await bank.head('job'))?.id, v2.id);
  });

  test('a truncated manifest file on disk is skipped by list with a warning; the head stays intact', async () => {
    const root = freshRoot();
    const { bank, warnings } = quietBank(new DirectoryStore(root));
    const v1 = await bank.commit({
      job: 'j',
      parent: null,
      step: 1,
      method: 'm',
      tensors: { p: tensor([2], 1) },
    });
    const v2 = await bank.commit({
      job: 'j',
      parent: v1.id,
      step: 2,
      method: 'm',
      tensors: { p: tensor([2], 2) },
    });
    const file = path.join(root, 'versions', `${v1.id}.json`);
    const text = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, text.slice(0, text.length >> 1));
    const listed = await bank.list();
    assert.deepEqual(
      listed.map((v) => v.id),
      [v2.id],
    );
    assert.equal(warnings.length, 1);
    assert.ok(warnings[0]?.includes(v1.id));
    assert.equal((await bank.head('j'))?.id, v2.id);
    // An edited (valid JSON, wrong content) manifest is refused too.
    fs.writeFileSync(file, text.replace('"step": 1', '"step": 9'));
    await assert.rejects(bank.get(v1.id), /hashes to .* not its id/);
  });
});
