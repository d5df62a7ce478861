/**
 * Bind before the peers are known, form the mesh later, and close/re-create (a generation change) without
 * leaking sockets or timers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CollectiveAbortedError,
  CollectiveClosedError,
  CollectiveConfigError,
  createCollective,
  GrpcTransport,
  TcpTransport,
} from '../../src/collective/index.js';

function socketHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap')
    .length;
}

describe('communicator lifecycle', () => {
  for (const kind of ['grpc', 'tcp'] as const) {
    it(`${kind}: 12 generations of create / all-reduce / close leave no sockets behind`, async () => {
      const baseline = socketHandles();
      const L = kind === 'grpc' ? GrpcTransport : TcpTransport;
      for (let generation = 1; generation <= 12; generation++) {
        // Listeners first (the worker registers its address), peers later (the coordinator's ring order).
        const listeners = await Promise.all([0, 1, 2].map(() => L.listen({ host: '127.0.0.1', port: 0 })));
        const peers = listeners.map((t, rank) => ({ rank, address: t.address })).reverse();
        const ring = peers.map((p, rank) => ({ rank, address: p.address }));
        const comms = await Promise.all(
          ring.map((p, rank) =>
            createCollective({
              rank,
              worldSize: 3,
              peers: ring,
              jobId: 'life',
              generation,
              transport: kind,
              timeoutMs: 5000,
              listener: listeners.find((l) => l.address === p.address)!,
            }),
          ),
        );
        const outs = await Promise.all(
          comms.map((c, r) => c.allReduce(Float32Array.of(r, 1), { step: generation, op: 'mean' })),
        );
        for (const o of outs) assert.deepEqual(Array.from(o), [1, 1]);
        await Promise.all(comms.map((c) => c.close()));
      }
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(
        socketHandles(),
        baseline,
        `leaked handles: ${process.getActiveResourcesInfo().join(', ')}`,
      );
    });
  }

  it('binds peers[rank].address itself when no listener is given; world size 1 needs no peers', async () => {
    const solo = await createCollective({
      rank: 0,
      peers: [{ rank: 0, address: '127.0.0.1:0' }],
      jobId: 'j',
      generation: 0,
    });
    const out = await solo.allReduce(Float32Array.of(1.5, -2), { step: 0, op: 'mean' });
    assert.deepEqual(Array.from(out), [1.5, -2]);
    await solo.close();
    await assert.rejects(solo.allReduce(Float32Array.of(1), { step: 1 }), CollectiveClosedError);
  });

  it('validates options before touching the network', async () => {
    await assert.rejects(
      createCollective({ rank: 2, peers: [{ rank: 0, address: '127.0.0.1:1' }], jobId: 'j', generation: 0 }),
      CollectiveConfigError,
    );
    await assert.rejects(
      createCollective({
        rank: 0,
        peers: [
          { rank: 0, address: '127.0.0.1:1' },
          { rank: 0, address: '127.0.0.1:2' },
        ],
        jobId: 'j',
        generation: 0,
      }),
      /appears twice/,
    );
  });

  it('after a failure the communicator stays broken and says why; close() unblocks everything', async () => {
    const ls = await Promise.all([0, 1].map(() => GrpcTransport.listen({})));
    const peers = ls.map((t, rank) => ({ rank, address: t.address }));
    const comms = await Promise.all(
      ls.map((l, rank) =>
        createCollective({ rank, peers, jobId: 'j', generation: 1, listener: l, timeoutMs: 5000 }),
      ),
    );
    // Rank 1 disagrees on the step: both fail, rank 0 learns it from rank 1's abort or its own check.
    const res = await Promise.allSettled([
      comms[0]!.allReduce(Float32Array.of(1), { step: 1 }),
      comms[1]!.allReduce(Float32Array.of(1), { step: 2 }),
    ]);
    assert.ok(res.every((r) => r.status === 'rejected'));
    const again = await Promise.allSettled([comms[0]!.allReduce(Float32Array.of(1), { step: 3 })]);
    assert.equal(again[0]!.status, 'rejected');
    const reason = (again[0] as PromiseRejectedResult).reason as Error;
    assert.ok(
      reason.name === 'CollectiveProtocolError' || reason instanceof CollectiveAbortedError,
      reason.message,
    );
    await Promise.all(comms.map((c) => c.close()));
  });
});
