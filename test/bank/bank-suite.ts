/**
 * The behaviour every bank store must show, run against each store (directory and JetStream): one suite, two
 * stores. Each store's test file supplies an environment that can open more instances of the same store and
 * damage it on purpose.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  BankConflictError,
  type BankStore,
  type BankTensor,
  CorruptBlobError,
  GcRefusedError,
  MissingManifestError,
  PromptBank,
  ShapeMismatchError,
  TagExistsError,
  UnknownVersionError,
} from '../../src/bank/index.js';

export interface StoreEnv {
  /** A new instance over the same backing storage (another "writer"). */
  open(): Promise<BankStore>;
  /** Flips one byte of a stored blob. */
  corruptBlob(digest: string): Promise<void>;
  /** Stores raw text as the manifest of `id`, bypassing all checks (a half-written manifest). */
  writeRawManifest(id: string, text: string): Promise<void>;
  close(): Promise<void>;
}

export function tensor(shape: number[], seed: number): BankTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(seed * 1000 + i) * 0.5;
  return { shape, data };
}

export function quietBank(store: BankStore): { bank: PromptBank; warnings: string[] } {
  const warnings: string[] = [];
  return { bank: new PromptBank(store, { onWarning: (m) => warnings.push(m) }), warnings };
}

const FAKE_ID = 'f'.repeat(64);
let jobCounter = 0;
// Each test uses its own job so the tests of one suite never see each other's heads.
const freshJob = (label: string) => `${label}-${process.pid}-${jobCounter++}`;

export function defineBankSuite(
  name: string,
  makeEnv: () => Promise<StoreEnv>,
  opts: { skip?: string | false } = {},
): void {
  describe(`bank behaviour: ${name}`, { skip: opts.skip ?? false }, () => {
    let env: StoreEnv;
    let store: BankStore;
    let bank: PromptBank;
    let warnings: string[];
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));

    before(async () => {
      env = await makeEnv();
      store = await env.open();
      ({ bank, warnings } = quietBank(store));
    });
    after(async () => {
      await env?.close();
      fs.rmSync(tmp, { recursive: true, force: true });
    });

    test('commit, head, get by id / prefix / tag / JOB@head, list newest first, load round trip', async () => {
      const job = freshJob('rt');
      assert.equal(await bank.head(job), null);
      const a = tensor([4, 8], 1);
      const v1 = await bank.commit({
        job,
        parent: null,
        step: 10,
        method: 'prompt-tuning',
        config: { lr: 0.3 },
        tensors: { 'prompt.rte': a },
        metrics: { loss: 1.5 },
        createdAt: '2024-01-01T00:00:00.000Z',
      });
      assert.match(v1.id, /^[0-9a-f]{64}$/);
      assert.equal(v1.tensors['prompt.rte']?.bytes, 4 * 8 * 4);
      assert.match(v1.tensors['prompt.rte']?.digest ?? '', /^sha256:[0-9a-f]{64}$/);
      const b = tensor([4, 8], 2);
      const v2 = await bank.commit({
        job,
        parent: v1.id,
        step: 20,
        method: 'prompt-tuning',
        config: { lr: 0.3 },
        tensors: new Map([['prompt.rte', b]]),
        metrics: { loss: 0.9 },
        tags: ['best'],
        createdAt: '2024-01-01T00:01:00.000Z',
      });
      assert.equal(v2.parent, v1.id);
      assert.equal(v2.configHash, v1.configHash);
      assert.equal((await bank.head(job))?.id, v2.id);
      assert.equal((await bank.get(v1.id)).step, 10);
      assert.equal((await bank.get(v2.id.slice(0, 12))).id, v2.id);
      assert.equal((await bank.get('best')).id, v2.id);
      assert.deepEqual((await bank.get('best')).tags, ['best']);
      assert.equal((await bank.get(`${job}@head`)).id, v2.id);
      await assert.rejects(bank.get('0000deadbeef'), UnknownVersionError);
      const listed = await bank.list({ job });
      assert.deepEqual(
        listed.map((v) => [v.id, v.step, v.head]),
        [
          [v2.id, 20, true],
          [v1.id, 10, false],
        ],
      );
      const loaded = await bank.load(v1.id);
      assert.deepEqual([...loaded.keys()], ['prompt.rte']);
      assert.deepEqual(loaded.get('prompt.rte')?.shape, [4, 8]);
      assert.deepEqual(loaded.get('prompt.rte')?.data, a.data);
      assert.deepEqual((await bank.load('best')).get('prompt.rte')?.data, b.data);
    });

    test('the id is the hash of the content: the same content gives the same id', async () => {
      const job = freshJob('same');
      const input = {
        job,
        parent: null,
        step: 1,
        method: 'm',
        tensors: { p: tensor([2, 3], 7) },
        createdAt: '2024-02-02T00:00:00.000Z',
      };
      const v = await bank.commit(input);
      // Recommitting identical content is idempotent: same id, head unchanged, no conflict.
      const again = await bank.commit(input);
      assert.equal(again.id, v.id);
      const other = await bank.commit({ ...input, parent: v.id, step: 2 });
      assert.notEqual(other.id, v.id);
    });

    test('resume from an older version: parent is the old version, expectHead the current head', async () => {
      const job = freshJob('resume');
      const v1 = await bank.commit({
        job,
        parent: null,
        step: 1,
        method: 'm',
        tensors: { p: tensor([2], 1) },
      });
      const v2 = await bank.commit({
        job,
        parent: v1.id,
        step: 2,
        method: 'm',
        tensors: { p: tensor([2], 2) },
      });
      // Without expectHead the CAS expects the parent to be the head: refused.
      await assert.rejects(
        bank.commit({ job, parent: v1.id, step: 2, method: 'm', tensors: { p: tensor([2], 3) } }),
        BankConflictError,
      );
      const r = await bank.commit({
        job,
        parent: v1.id,
        expectHead: v2.id,
        step: 2,
        method: 'm',
        tensors: { p: tensor([2], 3) },
      });
      assert.equal(r.parent, v1.id);
      assert.equal((await bank.head(job))?.id, r.id);
      // The abandoned branch stays listed and loadable.
      assert.deepEqual(new Set((await bank.list({ job })).map((v) => v.id)), new Set([v1.id, v2.id, r.id]));
      assert.deepEqual((await bank.load(v2.id)).get('p')?.data, tensor([2], 2).data);
    });

    test('content addressing stores identical tensors once', async () => {
      const job = freshJob('dedup');
      const existing = new Set((await store.listBlobs()).map((b) => b.digest));
      const same = tensor([16, 16], 42);
      const copy = { shape: [16, 16], data: new Float32Array(same.data) };
      const v1 = await bank.commit({
        job,
        parent: null,
        step: 0,
        method: 'm',
        tensors: { a: same, b: copy },
      });
      const v2 = await bank.commit({ job, parent: v1.id, step: 1, method: 'm', tensors: { c: copy } });
      assert.equal(v1.tensors.a?.digest, v1.tensors.b?.digest);
      assert.equal(v2.tensors.c?.digest, v1.tensors.a?.digest);
      const added = (await store.listBlobs()).filter((b) => !existing.has(b.digest));
      assert.equal(added.length, 1, 'one blob for three references');
      assert.equal(added[0]?.bytes, 16 * 16 * 4);
    });

    test('two writers racing on one head: exactly one wins, the other gets BankConflictError, nothing lost', async () => {
      const job = freshJob('race');
      const s1 = await env.open();
      const s2 = await env.open();
      const b1 = new PromptBank(s1);
      const b2 = new PromptBank(s2);
      const base = await b1.commit({
        job,
        parent: null,
        step: 0,
        method: 'm',
        tensors: { p: tensor([3], 0) },
      });
      const results = await Promise.allSettled([
        b1.commit({ job, parent: base.id, step: 1, method: 'm', tensors: { p: tensor([3], 1) } }),
        b2.commit({ job, parent: base.id, step: 1, method: 'm', tensors: { p: tensor([3], 2) } }),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected');
      assert.equal(won.length, 1);
      assert.equal(lost.length, 1);
      const winner = (won[0] as PromiseFulfilledResult<{ id: string }>).value;
      const err = (lost[0] as PromiseRejectedResult).reason;
      assert.ok(err instanceof BankConflictError, String(err));
      assert.equal(err.expected, base.id);
      assert.equal(err.actual, winner.id);
      assert.match(err.message, new RegExp(`${base.id}.*${winner.id}`));
      assert.match(err.message, new RegExp(err.attempted));
      assert.equal((await bank.head(job))?.id, winner.id);
      // The loser's version is not visible anywhere.
      assert.deepEqual(
        (await bank.list({ job })).map((v) => v.id),
        [winner.id, base.id],
      );
      await assert.rejects(bank.get(err.attempted), UnknownVersionError);
      await s1.close();
      await s2.close();
    });

    test('many writers committing with retry build one linear history with every commit in it', async () => {
      const job = freshJob('many');
      const writers = 4;
      const each = 5;
      let conflicts = 0;
      const runWriter = async (w: number) => {
        const s = await env.open();
        const b = new PromptBank(s);
        const ids: string[] = [];
        for (let i = 0; i < each; i++) {
          for (;;) {
            const head = await b.head(job);
            try {
              const m = await b.commit({
                job,
                parent: head?.id ?? null,
                step: (head?.step ?? 0) + 1,
                method: 'm',
                tensors: { p: tensor([2], w * 100 + i) },
                metrics: { writer: w },
              });
              ids.push(m.id);
              break;
            } catch (e) {
              if (!(e instanceof BankConflictError)) throw e;
              conflicts++;
            }
          }
        }
        await s.close();
        return ids;
      };
      const all = (await Promise.all(Array.from({ length: writers }, (_, w) => runWriter(w)))).flat();
      assert.equal(new Set(all).size, writers * each);
      // Walk the chain from the head: it holds every committed version exactly once.
      const chain: string[] = [];
      for (let m = await bank.head(job); m; m = m.parent ? await bank.get(m.parent) : null) chain.push(m.id);
      assert.equal(chain.length, writers * each);
      assert.deepEqual(new Set(chain), new Set(all));
      assert.equal((await bank.head(job))?.step, writers * each);
      assert.equal((await bank.list({ job })).length, writers * each);
      assert.ok(conflicts >= 0);
    });

    test('a flipped byte in a blob is detected on load and no data is returned', async () => {
      const job = freshJob('flip');
      const v = await bank.commit({
        job,
        parent: null,
        step: 0,
        method: 'm',
        tensors: { good: tensor([8], 5), bad: tensor([8], 6) },
      });
      const digest = v.tensors.bad?.digest as string;
      await env.corruptBlob(digest);
      await assert.rejects(bank.load(v.id), (e: unknown) => {
        assert.ok(e instanceof CorruptBlobError, String(e));
        assert.equal(e.version, v.id);
        assert.equal(e.tensor, 'bad');
        assert.equal(e.digest, digest);
        assert.ok(e.message.includes(v.id) && e.message.includes("'bad'") && e.message.includes(digest));
        return true;
      });
      // The intact tensor still loads on its own.
      assert.equal((await bank.load(v.id, { names: ['good'] })).get('good')?.data.length, 8);
    });

    test('an unparsable manifest is reported and skipped by list; it never becomes the head', async () => {
      const job = freshJob('trunc');
      const v = await bank.commit({
        job,
        parent: null,
        step: 3,
        method: 'm',
        tensors: { p: tensor([2], 1) },
      });
      const text = await store.getManifest(v.id);
      // A copy of a real manifest cut in half, stored under another id.
      await env.writeRawManifest(FAKE_ID, (text ?? '').slice(0, 40));
      warnings.length = 0;
      const listed = await bank.list({ job });
      assert.deepEqual(
        listed.map((x) => x.id),
        [v.id],
      );
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? '', new RegExp(`${FAKE_ID}.*(JSON|truncated)`));
      assert.equal((await bank.head(job))?.id, v.id);
      const scanned = await bank.scan();
      assert.ok(scanned.unreadable.some((u) => u.id === FAKE_ID));
      // gc will not guess which blobs the broken manifest needs.
      await assert.rejects(bank.gc({ graceMs: 0 }), GcRefusedError);
      await store.deleteManifest(FAKE_ID);
    });

    test('a head pointing at a missing manifest is an error that names it', async () => {
      const job = freshJob('dangling');
      const v = await bank.commit({
        job,
        parent: null,
        step: 0,
        method: 'm',
        tensors: { p: tensor([2], 1) },
      });
      const missing = 'e'.repeat(64);
      assert.deepEqual(await store.compareAndSetHead(job, v.id, missing), { ok: true });
      await assert.rejects(bank.head(job), (e: unknown) => {
        assert.ok(e instanceof MissingManifestError);
        assert.match(e.message, new RegExp(`head of job '${job}'.*${missing}`));
        return true;
      });
      assert.deepEqual(await store.compareAndSetHead(job, missing, v.id), { ok: true });
    });

    test('tags: create, refuse to move without force, move with force', async () => {
      const job = freshJob('tags');
      const v1 = await bank.commit({
        job,
        parent: null,
        step: 1,
        method: 'm',
        tensors: { p: tensor([2], 1) },
      });
      const v2 = await bank.commit({
        job,
        parent: v1.id,
        step: 2,
        method: 'm',
        tensors: { p: tensor([2], 2) },
      });
      const tag = `${job}.release`;
      await bank.tag(v1.id, tag);
      await bank.tag(v1.id, tag); // same target: fine
      await assert.rejects(bank.tag(v2.id, tag), TagExistsError);
      assert.equal((await bank.get(tag)).id, v1.id);
      await bank.tag(v2.id, tag, { force: true });
      assert.equal((await bank.get(tag)).id, v2.id);
      assert.deepEqual((await bank.get(v1.id)).tags, []);
    });

    test('diff: added, removed, changed with the L2 distance of the change, metrics', async () => {
      const job = freshJob('diff');
      const v1 = await bank.commit({
        job,
        parent: null,
        step: 1,
        method: 'm',
        tensors: {
          keep: { shape: [2], data: new Float32Array([1, 1]) },
          move: { shape: [3], data: new Float32Array([0, 0, 0]) },
          gone: { shape: [1], data: new Float32Array([5]) },
        },
        metrics: { loss: 2, acc: 0.5 },
      });
      const v2 = await bank.commit({
        job,
        parent: v1.id,
        step: 2,
        method: 'm',
        tensors: {
          keep: { shape: [2], data: new Float32Array([1, 1]) },
          move: { shape: [3], data: new Float32Array([3, 0, 4]) },
          fresh: { shape: [2, 2], data: new Float32Array(4) },
        },
        metrics: { loss: 1.5, f1: 0.7 },
      });
      const d = await bank.diff(v1.id, v2.id);
      assert.deepEqual(d.added, [{ name: 'fresh', shape: [2, 2] }]);
      assert.deepEqual(d.removed, [{ name: 'gone', shape: [1] }]);
      assert.deepEqual(d.unchanged, ['keep']);
      assert.equal(d.changed.length, 1);
      assert.equal(d.changed[0]?.name, 'move');
      assert.equal(d.changed[0]?.l2, 5);
      assert.equal(d.changed[0]?.normB, 5);
      assert.deepEqual(d.metrics, [
        { name: 'acc', a: 0.5, b: null, delta: null },
        { name: 'f1', a: null, b: 0.7, delta: null },
        { name: 'loss', a: 2, b: 1.5, delta: -0.5 },
      ]);
    });

    test('compose: base minus a dropped source plus a source taken from another version', async () => {
      const src = freshJob('srcjob');
      const job = freshJob('compose');
      const s1 = tensor([5, 4], 11);
      const s2 = tensor([5, 4], 12);
      const s3 = tensor([5, 4], 13);
      const base = await bank.commit({
        job: src,
        parent: null,
        step: 100,
        method: 'attempt',
        tensors: { 'source.mnli': s1, 'source.qnli': s2 },
      });
      const other = await bank.commit({
        job: freshJob('other'),
        parent: null,
        step: 50,
        method: 'prompt-tuning',
        tensors: { 'prompt.sst2': s3 },
      });
      const c = await bank.compose({
        job,
        base: base.id,
        drop: ['source.qnli'],
        take: [{ version: other.id.slice(0, 10), tensor: 'prompt.sst2', as: 'source.sst2' }],
        expectShapes: 4,
      });
      assert.equal(c.parent, null);
      assert.equal(c.method, 'attempt');
      assert.deepEqual(Object.keys(c.tensors).sort(), ['source.mnli', 'source.sst2']);
      assert.equal(c.tensors['source.sst2']?.digest, other.tensors['prompt.sst2']?.digest);
      const loaded = await bank.load(c.id);
      assert.deepEqual(loaded.get('source.mnli')?.data, s1.data);
      assert.deepEqual(loaded.get('source.sst2')?.data, s3.data);
      assert.equal((c.extra?.composedFrom as unknown[] | undefined)?.length, 2);
      assert.equal((await bank.head(job))?.id, c.id);
      // A second compose goes on top of the head.
      const c2 = await bank.compose({ job, base: c.id, take: [{ version: base.id, tensor: 'source.qnli' }] });
      assert.equal(c2.parent, c.id);
      assert.equal(Object.keys(c2.tensors).length, 3);
      await assert.rejects(bank.compose({ job, base: c.id, drop: ['nope'] }), /no such tensor/);
      await assert.rejects(
        bank.compose({ job, base: c.id, take: [{ version: base.id, tensor: 'source.mnli' }] }),
        /two tensors would be named 'source.mnli'/,
      );
      await assert.rejects(
        bank.compose({ job, base: c.id, expectShapes: 8 }),
        (e: unknown) => e instanceof ShapeMismatchError && /\[5, 4\]/.test(e.message) && /8/.test(e.message),
      );
    });

    test('export then import round trip; a wrong shape for the backbone is refused naming both shapes', async () => {
      const job = freshJob('exp');
      const p = tensor([6, 8], 21);
      const v = await bank.commit({
        job,
        parent: null,
        step: 7,
        method: 'prompt-tuning',
        tensors: { 'prompt.rte': p },
        metrics: { acc: 0.75 },
      });
      const dir = path.join(tmp, `export-${job}`);
      const { files } = await bank.export(v.id, dir);
      assert.deepEqual(files.map((f) => path.basename(f)).sort(), ['manifest.json', 'tensors.safetensors']);
      const target = freshJob('imp');
      const imported = await bank.import(dir, { job: target, expectShapes: { 'prompt.rte': [6, 8] } });
      assert.equal(imported.step, 7);
      assert.equal(imported.method, 'prompt-tuning');
      assert.deepEqual(imported.metrics, { acc: 0.75 });
      assert.equal(imported.tensors['prompt.rte']?.digest, v.tensors['prompt.rte']?.digest);
      assert.deepEqual((await bank.load(imported.id)).get('prompt.rte')?.data, p.data);
      assert.equal((await bank.head(target))?.id, imported.id);
      // Importing again goes on top of the head.
      const again = await bank.import(dir, { job: target, expectShapes: 8 });
      assert.equal(again.parent, imported.id);
      await assert.rejects(bank.import(dir, { job: target, expectShapes: 768 }), (e: unknown) => {
        assert.ok(e instanceof ShapeMismatchError);
        assert.match(e.message, /'prompt\.rte'.*\[6, 8\].*768/);
        return true;
      });
      await assert.rejects(
        bank.import(dir, { job: target, expectShapes: { 'prompt.rte': [6, 768] } }),
        (e: unknown) => {
          assert.ok(e instanceof ShapeMismatchError);
          assert.match(e.message, /\[6, 8\].*\[6, 768\]/);
          return true;
        },
      );
      assert.equal((await bank.head(target))?.id, again.id, 'refused imports change nothing');
    });

    test('gc removes only blobs no version references', async () => {
      const job = freshJob('gc');
      const keep = tensor([32], 31);
      const v1 = await bank.commit({ job, parent: null, step: 0, method: 'm', tensors: { p: keep } });
      // A lost race leaves its blobs behind, unreferenced.
      const orphan = tensor([32], 32);
      await assert.rejects(
        bank.commit({ job, parent: null, step: 0, method: 'm', tensors: { p: orphan } }),
        BankConflictError,
      );
      const v2 = await bank.commit({
        job,
        parent: v1.id,
        step: 1,
        method: 'm',
        tensors: { p: keep, q: tensor([8], 33) },
      });
      const recent = await bank.gc();
      assert.equal(recent.blobsDeleted, 0, 'young blobs are protected by the grace period');
      assert.ok(recent.blobsSkippedRecent >= 1);
      const dry = await bank.gc({ graceMs: 0, dryRun: true });
      assert.ok(dry.blobsDeleted >= 1);
      const res = await bank.gc({ graceMs: 0 });
      assert.deepEqual(res.deleted.sort(), dry.deleted.sort());
      assert.ok(res.bytesDeleted >= 32 * 4);
      const remaining = new Set((await store.listBlobs()).map((b) => b.digest));
      for (const v of [v1, v2]) for (const t of Object.values(v.tensors)) assert.ok(remaining.has(t.digest));
      assert.equal(res.deleted.length + res.blobsKept, res.deleted.length + remaining.size);
      assert.deepEqual((await bank.load(v2.id)).get('p')?.data, keep.data);
      assert.equal((await bank.gc({ graceMs: 0 })).blobsDeleted, 0, 'nothing left to collect');
    });

    test('bad input is refused before anything is written', async () => {
      const job = freshJob('bad');
      await assert.rejects(
        bank.commit({ job: 'has.dot', parent: null, step: 0, method: 'm', tensors: {} }),
        /invalid job name/,
      );
      await assert.rejects(
        bank.commit({
          job,
          parent: null,
          step: 0,
          method: 'm',
          tensors: { p: { shape: [3], data: new Float32Array(2) } },
        }),
        /'p' has 2 values but shape \[3\] needs 3/,
      );
      await assert.rejects(
        bank.commit({ job, parent: null, step: 0, method: 'm', tensors: {}, metrics: { loss: Number.NaN } }),
        /metric 'loss' must be a finite number/,
      );
      await assert.rejects(
        bank.commit({ job, parent: 'a'.repeat(64), step: 0, method: 'm', tensors: {} }),
        MissingManifestError,
      );
      assert.equal(await bank.head(job), null);
    });
  });
}
