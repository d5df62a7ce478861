import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { connect } from 'nats';
import { NatsServerNotFoundError, natsSkipReason, startNatsServer } from '../helpers/nats.js';

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('startNatsServer', { skip: natsSkipReason() }, () => {
  test('starts on a free loopback port with JetStream, restarts on the same port, cleans its store', async () => {
    const srv = await startNatsServer();
    try {
      assert.ok(srv.port > 0);
      assert.equal(srv.url, `nats://127.0.0.1:${srv.port}`);
      assert.ok(fs.existsSync(srv.storeDir));
      const nc = await connect({ servers: srv.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
      const kv = await nc.jetstream().views.kv('pm-test-helper');
      await kv.put('k', new TextEncoder().encode('v1'));
      await srv.restart();
      assert.ok(await canConnect(srv.port), 'same port after restart');
      // The store survives the restart: JetStream data written before is still there.
      const deadline = Date.now() + 10_000;
      let value: string | undefined;
      while (Date.now() < deadline) {
        try {
          const e = await kv.get('k');
          value = e ? new TextDecoder().decode(e.value) : undefined;
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      assert.equal(value, 'v1');
      await nc.close();
    } finally {
      await srv.stop();
    }
    assert.equal(fs.existsSync(srv.storeDir), false, 'temp store removed on stop');
    assert.equal(await canConnect(srv.port), false, 'nothing listens after stop');
  });

  test('keeps a store directory it was given', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
    try {
      const srv = await startNatsServer({ storeDir: dir });
      await srv.stop();
      assert.ok(fs.existsSync(dir));
      assert.ok(fs.readdirSync(dir).includes('jetstream'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a bad argument gives a start error with the server log', async () => {
    // A private TMPDIR (read by os.tmpdir() at each call) so servers started by other test files cannot interfere.
    const privateTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = privateTmp;
    try {
      await assert.rejects(startNatsServer({ args: ['--no-such-flag'] }), /exited during start-up/);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    assert.deepEqual(fs.readdirSync(privateTmp), [], 'a failed start removes its temp store');
    fs.rmSync(privateTmp, { recursive: true, force: true });
  });
});

test('a missing binary names how to install nats-server', async () => {
  await assert.rejects(startNatsServer({ binary: '/nonexistent/nats-server' }), (e: unknown) => {
    assert.ok(e instanceof NatsServerNotFoundError);
    assert.match(e.message, /apt-get install nats-server/);
    return true;
  });
});
