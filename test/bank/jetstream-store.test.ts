import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from 'nats';
import {
  announceVersion,
  BankConflictError,
  JetStreamStore,
  type PromptBank,
  parseVersionAnnouncement,
} from '../../src/bank/index.js';
import { bankVersionSubject } from '../../src/control/subjects.js';
import { type NatsServerHandle, natsSkipReason, startNatsServer } from '../helpers/nats.js';
import { defineBankSuite, quietBank, type StoreEnv, tensor } from './bank-suite.js';

const skip = natsSkipReason();
let prefixCounter = 0;

async function natsConnect(url: string): Promise<NatsConnection> {
  // Keep reconnecting through a server restart, as a long-running coordinator would.
  return connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
}

async function jetStreamEnv(): Promise<StoreEnv> {
  const server = await startNatsServer();
  const prefix = `t${process.pid}_${prefixCounter++}`;
  const conns: NatsConnection[] = [];
  const admin = await natsConnect(server.url);
  conns.push(admin);
  const adminStore = await JetStreamStore.open(admin, { bucketPrefix: prefix });
  return {
    open: async () => {
      const nc = await natsConnect(server.url);
      conns.push(nc);
      return JetStreamStore.open(nc, { bucketPrefix: prefix });
    },
    corruptBlob: async (digest) => {
      const os = await admin.jetstream().views.os(adminStore.objectBucket);
      const name = JetStreamStore.blobObjectName(digest);
      const bytes = await os.getBlob(name);
      assert.ok(bytes);
      bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0x01;
      await os.putBlob({ name }, bytes);
    },
    writeRawManifest: async (id, text) => {
      const kv = await admin.jetstream().views.kv(adminStore.kvBucket);
      await kv.put(`m.${id}`, new TextEncoder().encode(text));
    },
    close: async () => {
      for (const nc of conns) if (!nc.isClosed()) await nc.close();
      await server.stop();
    },
  };
}

defineBankSuite('JetStreamStore', jetStreamEnv, { skip });

describe('JetStreamStore on a real nats-server', { skip }, () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  let store: JetStreamStore;
  let bank: PromptBank;

  before(async () => {
    server = await startNatsServer();
    nc = await natsConnect(server.url);
    store = await JetStreamStore.open(nc, { bucketPrefix: 'big' });
    ({ bank } = quietBank(store));
  });
  after(async () => {
    if (nc && !nc.isClosed()) await nc.close();
    await server?.stop();
  });

  test('a tensor over 1 MiB (the KV value limit) goes to the object store and round-trips', async () => {
    const big = tensor([640, 768], 3); // 1.9 MiB
    const v = await bank.commit({ job: 'big', parent: null, step: 1, method: 'm', tensors: { big } });
    assert.ok((v.tensors.big?.bytes ?? 0) > 1024 * 1024);
    const info = await (await nc.jetstream().views.os(store.objectBucket)).info(
      JetStreamStore.blobObjectName(v.tensors.big?.digest as string),
    );
    assert.equal(info?.size, 640 * 768 * 4);
    assert.deepEqual((await bank.load(v.id)).get('big')?.data, big.data);
  });

  test('CAS conflicts come from KV revisions: a stale expected head is refused by the server', async () => {
    const kv = await nc.jetstream().views.kv(store.kvBucket);
    const v1 = await bank.commit({
      job: 'rev',
      parent: null,
      step: 1,
      method: 'm',
      tensors: { p: tensor([2], 1) },
    });
    const e1 = await kv.get('h.rev');
    const v2 = await bank.commit({
      job: 'rev',
      parent: v1.id,
      step: 2,
      method: 'm',
      tensors: { p: tensor([2], 2) },
    });
    const e2 = await kv.get('h.rev');
    assert.ok(e1 && e2 && e2.revision > e1.revision);
    // Another writer updating with the old revision is refused by the server itself.
    await assert.rejects(
      kv.update('h.rev', new TextEncoder().encode(v1.id), e1.revision),
      /wrong last sequence/,
    );
    await assert.rejects(
      bank.commit({ job: 'rev', parent: v1.id, step: 2, method: 'm', tensors: { p: tensor([2], 3) } }),
      (e: unknown) => e instanceof BankConflictError && e.actual === v2.id,
    );
  });

  test('the store keeps working across a nats-server restart', async () => {
    const v1 = await bank.commit({
      job: 'restart',
      parent: null,
      step: 1,
      method: 'm',
      tensors: { p: tensor([64], 1) },
    });
    await server.restart({ hard: true });
    // The client reconnects on its own; the store retries until JetStream is back.
    const v2 = await bank.commit({
      job: 'restart',
      parent: v1.id,
      step: 2,
      method: 'm',
      tensors: { p: tensor([64], 2), big: tensor([300, 1024], 4) },
    });
    assert.equal((await bank.head('restart'))?.id, v2.id);
    assert.deepEqual((await bank.load(v1.id)).get('p')?.data, tensor([64], 1).data);
    assert.deepEqual((await bank.load(v2.id)).get('big')?.data, tensor([300, 1024], 4).data);
    // Restart while a commit is in flight: it completes (or reports a conflict against itself, never half-done).
    const pending = bank.commit({
      job: 'restart',
      parent: v2.id,
      step: 3,
      method: 'm',
      tensors: { p: tensor([64], 3) },
    });
    await server.restart();
    const v3 = await pending;
    assert.equal((await bank.head('restart'))?.id, v3.id);
    assert.deepEqual(
      (await bank.list({ job: 'restart' })).map((v) => v.step),
      [3, 2, 1],
    );
  });

  test('`promptmesh bank ls --nats URL --json` lists the JetStream bank', async () => {
    const v = await bank.commit({
      job: 'clijob',
      parent: null,
      step: 42,
      method: 'm',
      tensors: { p: tensor([2], 9) },
    });
    const mainJs = path.resolve(
      path.dirname(fileURLToPath(import.meta.url)),
      '..',
      '..',
      'src',
      'cli',
      'main.js',
    );
    const r = spawnSync(
      process.execPath,
      [mainJs, 'bank', 'ls', '--nats', server.url, '--bucket-prefix', 'big', '--job', 'clijob', '--json'],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(
      (JSON.parse(r.stdout) as { id: string; step: number }[]).map((x) => [x.id, x.step]),
      [[v.id, 42]],
    );
    // The coordinator's and worker's spelling: --bank-nats, with the server from $NATS_URL.
    const env = { ...process.env, NATS_URL: server.url, PROMPTMESH_BANK: '/nonexistent' };
    const r2 = spawnSync(
      process.execPath,
      [mainJs, 'bank', 'ls', '--bank-nats', '--bucket-prefix', 'big', '--job', 'clijob', '--json'],
      { encoding: 'utf8', env },
    );
    assert.equal(r2.status, 0, r2.stderr);
    assert.deepEqual(
      (JSON.parse(r2.stdout) as { id: string }[]).map((x) => x.id),
      [v.id],
    );
    const none = spawnSync(process.execPath, [mainJs, 'bank', 'ls', '--bank-nats'], {
      encoding: 'utf8',
      env: { ...process.env, NATS_URL: '' },
    });
    assert.equal(none.status, 2);
    assert.match(none.stderr, /--bank-nats needs a NATS server: --nats URL or \$NATS_URL/);
  });

  test('announceVersion publishes the version on promptmesh.<job>.bank.version', async () => {
    const sub = nc.subscribe(bankVersionSubject('ann'), { max: 1 });
    await nc.flush();
    const v = await bank.commit({
      job: 'ann',
      parent: null,
      step: 5,
      method: 'attempt',
      tensors: { p: tensor([2], 1) },
      metrics: { loss: 0.25 },
    });
    await announceVersion(nc, v);
    for await (const m of sub) {
      assert.equal(m.subject, 'promptmesh.ann.bank.version');
      assert.deepEqual(parseVersionAnnouncement(m.data), {
        id: v.id,
        job: 'ann',
        step: 5,
        parent: null,
        method: 'attempt',
        metrics: { loss: 0.25 },
      });
    }
  });
});
