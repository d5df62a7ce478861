/**
 * Tags: a message from another job, an older generation or an older step is refused and counted, never summed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Frame, FrameKind } from '../../src/collective/frame-codec.js';
import {
  Collective,
  CollectiveConnectError,
  CollectiveProtocolError,
  CollectiveTimeoutError,
  GrpcTransport,
  TcpTransport,
} from '../../src/collective/index.js';
import { PeerInboxes } from '../../src/collective/peer-inboxes.js';

const TAG = { step: 5, op: 2, wire: 1, totalElements: 1 };

function frame(over: Partial<Frame>): Frame {
  return {
    jobId: 'job',
    generation: 3,
    step: 5,
    op: 2,
    seq: 0,
    from: 1,
    kind: FrameKind.Data,
    wire: 1,
    totalElements: 1,
    payload: new Uint8Array(new Float32Array([1]).buffer),
    ...over,
  };
}

describe('peer inboxes', () => {
  it('refuses foreign jobs, other generations and older steps, counting each; accepts the awaited one', async () => {
    const inboxes = new PeerInboxes({ jobId: 'job', generation: 3, rank: 0 }, 2, 1000, (r) => `rank ${r}`);
    inboxes.deliver(1, frame({ jobId: 'other' }));
    inboxes.deliver(1, frame({ generation: 4 }));
    inboxes.deliver(1, frame({ from: 0 })); // claims another sender than the connection's
    inboxes.deliver(1, frame({ generation: 2 }));
    inboxes.deliver(1, frame({ step: 4 }));
    inboxes.deliver(1, frame({ op: 1 }));
    inboxes.deliver(1, frame({ payload: new Uint8Array(new Float32Array([42]).buffer) }));
    const got = await inboxes.recv(1, TAG, 0, 'test data');
    assert.equal(new Float32Array(got.buffer, got.byteOffset, 1)[0], 42);
    assert.equal(inboxes.counters.foreignRefused, 3);
    assert.equal(inboxes.counters.staleRefused, 3);
  });

  it('treats a message from a later step than awaited as a protocol error, not something to wait for', async () => {
    const inboxes = new PeerInboxes({ jobId: 'job', generation: 3, rank: 0 }, 2, 1000, (r) => `rank ${r}`);
    inboxes.deliver(1, frame({ step: 6 }));
    await assert.rejects(inboxes.recv(1, TAG, 0, 'x'), CollectiveProtocolError);
  });

  it('times out naming the peer and the step', async () => {
    const inboxes = new PeerInboxes(
      { jobId: 'job', generation: 3, rank: 0 },
      2,
      50,
      (r) => `rank ${r} (h:1)`,
    );
    await assert.rejects(inboxes.recv(1, TAG, 0, 'ring data'), (e: Error) => {
      assert.ok(e instanceof CollectiveTimeoutError);
      assert.match(e.message, /rank 1 \(h:1\).*step 5/);
      return true;
    });
  });
});

for (const T of [GrpcTransport, TcpTransport]) {
  describe(`${T.name}: refusing stale and foreign peers`, () => {
    it('refuses a subscription from another job and from an older generation, and counts them', async () => {
      const a = await T.listen({});
      const b = await T.listen({});
      const peers = [
        { rank: 0, address: a.address },
        { rank: 1, address: b.address },
      ];
      await Promise.all([
        a.connect(peers, { jobId: 'job', generation: 2, rank: 0, timeoutMs: 5000 }),
        b.connect(peers, { jobId: 'job', generation: 2, rank: 1, timeoutMs: 5000 }),
      ]);
      const ca = new Collective(a);
      const cb = new Collective(b);
      try {
        // A leftover of generation 1 and a worker of another job both believe they are rank 1 next to `a`.
        for (const [jobId, generation] of [
          ['job', 1],
          ['other-job', 2],
        ] as const) {
          const rogue = await T.listen({});
          const rp = [
            { rank: 0, address: a.address },
            { rank: 1, address: rogue.address },
          ];
          await assert.rejects(
            rogue.connect(rp, { jobId, generation, rank: 1, timeoutMs: 1500 }),
            (e: Error) => e instanceof CollectiveConnectError,
          );
          await rogue.close();
        }
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(a.stats().staleRefused, 1, 'stale generation not counted');
        assert.equal(a.stats().foreignRefused, 1, 'foreign job not counted');

        // A stale frame on the live connection: an older step than the one `a` waits for. Dropped, counted.
        await b.send(0, { step: 3, op: 0, wire: 1, totalElements: 2 }, 0, 8, (dst) =>
          dst.set(new Uint8Array(Float32Array.of(1e6, 1e6).buffer)),
        );
        const [ra, rb] = await Promise.all([
          ca.allReduce(Float32Array.of(1, 2), { step: 5 }),
          cb.allReduce(Float32Array.of(10, 20), { step: 5 }),
        ]);
        assert.deepEqual(Array.from(ra), [11, 22]);
        assert.deepEqual(Array.from(rb), [11, 22]);
        assert.equal(a.stats().staleRefused, 2, 'the stale frame was not refused');
      } finally {
        await Promise.all([ca.close(), cb.close()]);
      }
    });
  });
}
