/**
 * Re-binding the collective's port after a generation (src/runtime/worker/listen-retry.ts), with real gRPC
 * listeners: while the previous listener holds the port, a bind fails with EADDRINUSE; retried with backoff, it
 * succeeds once that listener has closed, and gives up with the bind's error when it never does.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GrpcTransport } from '../../src/collective/grpc-transport.js';
import { listenWithRetry } from '../../src/runtime/worker/listen-retry.js';

const portOf = (t: GrpcTransport) => Number(t.address.slice(t.address.lastIndexOf(':') + 1));

describe('listen with retry', () => {
  test('a port still held: a plain bind fails, the retried bind gets it once the holder closes', async () => {
    const holder = await GrpcTransport.listen({ host: '127.0.0.1', port: 0 });
    const port = portOf(holder);
    await assert.rejects(GrpcTransport.listen({ host: '127.0.0.1', port }), /cannot listen/);
    let attempts = 0;
    setTimeout(() => void holder.close(), 300);
    const t = await listenWithRetry(
      () => {
        attempts += 1;
        return GrpcTransport.listen({ host: '127.0.0.1', port });
      },
      { baseMs: 50 },
    );
    try {
      assert.equal(portOf(t), port);
      assert.ok(attempts >= 2, `bound at attempt ${attempts}, before the holder closed`);
    } finally {
      await t.close();
    }
  });

  test('gives up with the bind error after the retries, or at once when cancelled', async () => {
    const holder = await GrpcTransport.listen({ host: '127.0.0.1', port: 0 });
    const port = portOf(holder);
    try {
      let attempts = 0;
      const bind = () => {
        attempts += 1;
        return GrpcTransport.listen({ host: '127.0.0.1', port });
      };
      await assert.rejects(listenWithRetry(bind, { retries: 3, baseMs: 10 }), /cannot listen/);
      assert.equal(attempts, 4);
      attempts = 0;
      await assert.rejects(listenWithRetry(bind, { retries: 3, baseMs: 10, cancelled: () => true }));
      assert.equal(attempts, 1);
    } finally {
      await holder.close();
    }
  });
});
