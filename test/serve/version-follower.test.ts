/**
 * The version follower on a real folder bank and a real nats-server: with polling off it moves only when a commit is
 * announced on NATS, opens the new version before letting go of the old one, and keeps serving the old one when the
 * new one cannot be opened.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { announceVersion, DirectoryStore, type Manifest, PromptBank } from '../../src/bank/index.js';
import type { ServedVersion } from '../../src/infer/index.js';
import { VersionFollower } from '../../src/serve/index.js';
import { type NatsServerHandle, natsSkipReason, startNatsServer } from '../helpers/nats.js';

describe('VersionFollower', { skip: natsSkipReason() }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-follow-'));
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  const bank = new PromptBank(new DirectoryStore(path.join(dir, 'bank')), { onWarning: () => {} });
  let head: string | null = null;
  const commit = async (x: number): Promise<Manifest> => {
    const m = await bank.commit({
      job: 'fj',
      parent: head,
      step: x,
      method: 'prompt-tuning',
      tensors: { prompt: { shape: [1, 2], data: Float32Array.from([x, x]) } },
    });
    head = m.id;
    return m;
  };
  before(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
  });
  after(async () => {
    await nc?.close();
    await nats?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('moves on an announcement, not before; an unservable version leaves the old one serving', async () => {
    const v1 = await commit(1);
    await bank.tag(v1.id, 'live');
    const disposed: string[] = [];
    const logs: string[] = [];
    const refuse = new Set<string>();
    // The opener stands in for openServedVersion (which needs a backbone); the follower only reads the manifest.
    const open = async (id: string): Promise<ServedVersion> => {
      if (refuse.has(id)) throw new Error('trained with another method config');
      const manifest = await bank.get(id);
      return { manifest, dispose: () => disposed.push(id) } as unknown as ServedVersion;
    };
    const f = new VersionFollower(bank, 'live', open, { pollMs: 0, nc, log: (l) => logs.push(l) });
    await f.start();
    assert.equal(f.current?.manifest.id, v1.id);

    const v2 = await commit(2);
    await bank.tag(v2.id, 'live', { force: true });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(f.current?.manifest.id, v1.id, 'moved without an announcement while polling is off');
    await announceVersion(nc, v2);
    const until = async (pred: () => boolean) => {
      const deadline = Date.now() + 5000;
      while (!pred() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    };
    await until(() => f.current?.manifest.id === v2.id);
    assert.equal(f.current?.manifest.id, v2.id);
    assert.deepEqual(disposed, [v1.id]);

    const v3 = await commit(3);
    refuse.add(v3.id);
    await bank.tag(v3.id, 'live', { force: true });
    await announceVersion(nc, v3);
    await until(() => logs.some((l) => l.includes('cannot be served')));
    assert.equal(f.current?.manifest.id, v2.id);
    assert.match(
      logs.at(-1)!,
      new RegExp(
        `'live' moved to ${v3.id.slice(0, 12)}, which cannot be served \\(trained with another method config\\); still serving ${v2.id.slice(0, 12)}`,
      ),
    );
    await f.stop();
    assert.deepEqual(disposed, [v1.id, v2.id]);
  });
});
