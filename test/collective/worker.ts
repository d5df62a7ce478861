/**
 * A collective worker process for the multi-process tests (forked by test/collective/group.ts). It listens,
 * connects when told the peers, and runs all-reduces on deterministic pseudo-random inputs it can regenerate for
 * every rank, so it checks its own result against a float64 sum without shipping buffers over IPC.
 */
import {
  type AlgorithmChoice,
  Collective,
  GrpcTransport,
  type PeerInfo,
  type WireFormat,
} from '../../src/collective/index.js';
import { inputFor, verify } from './reference.js';

export interface AllReduceRequest {
  type: 'allreduce';
  id: number;
  step: number;
  seed: number;
  length: number;
  op: 'sum' | 'mean';
  wire: WireFormat;
  algorithm: AlgorithmChoice;
}

const send = (m: unknown): void => {
  process.send!(m);
};

const listener = await GrpcTransport.listen({});
let comm: Collective | undefined;
send({ type: 'listening', address: listener.address });

// Orphaned by its test (the test process died or gave up): exit rather than wait forever.
process.on('disconnect', () => process.exit(1));

process.on('message', async (m: { type: string } & Record<string, unknown>) => {
  try {
    if (m.type === 'connect') {
      await listener.connect(m.peers as PeerInfo[], {
        jobId: m.jobId as string,
        generation: m.generation as number,
        rank: m.rank as number,
        timeoutMs: m.timeoutMs as number,
      });
      comm = new Collective(listener, { chunkBytes: m.chunkBytes as number | undefined });
      send({ type: 'connected' });
    } else if (m.type === 'allreduce') {
      const r = m as unknown as AllReduceRequest;
      const c = comm!;
      const input = inputFor(r.seed, c.rank, r.length);
      const t0 = performance.now();
      try {
        const out = await c.allReduce(input, {
          step: r.step,
          op: r.op,
          wire: r.wire,
          algorithm: r.algorithm,
        });
        const ms = performance.now() - t0;
        const unchanged = inputFor(r.seed, c.rank, r.length).every((v, i) => Object.is(v, input[i]));
        const check = verify(out, r.seed, c.worldSize, r.op, r.wire);
        send({
          type: 'result',
          id: r.id,
          ok: true,
          ms,
          unchanged,
          algorithm: c.stats().lastAlgorithm,
          ...check,
        });
      } catch (e) {
        const err = e as Error & { peerRank?: number; step?: number };
        send({
          type: 'result',
          id: r.id,
          ok: false,
          ms: performance.now() - t0,
          name: err.name,
          message: err.message,
          peerRank: err.peerRank,
        });
      }
    } else if (m.type === 'stats') {
      send({ type: 'stats', stats: comm!.stats() });
    } else if (m.type === 'close') {
      await comm?.close();
      await listener.close();
      process.exit(0);
    }
  } catch (e) {
    send({ type: 'fatal', message: (e as Error).message });
  }
});
