/**
 * Peers are authenticated (issue 14 item 5): with a peer key, the collective refuses a subscriber that cannot prove
 * it is a member of this generation. An intruder that knows the job id (not a secret) and can reach a member's
 * port tries without a proof, with a wrong key, with the previous generation's key, with a proof made for another
 * rank, with an old one, and replays a genuine hello: each is refused with a reason and counted, while the
 * members' all-reduce runs on unaffected. Real gRPC servers on loopback.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { encodeHello, type Hello, proveHello } from '../../src/collective/hello.js';
import {
  Collective,
  CollectiveConfigError,
  GrpcTransport,
  TcpTransport,
} from '../../src/collective/index.js';
import { deriveGenerationKey, deriveJobKey } from '../../src/control/message-auth.js';

const SUBSCRIBE = '/promptmesh.v1.Collective/Subscribe';
const id = (b: Buffer) => b;

/** Opens a Subscribe stream with the given hello bytes; resolves with the refusal's details, or 'accepted'. */
function subscribe(address: string, hello: Buffer): Promise<string> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise<string>((resolve) => {
    const call = client.makeServerStreamRequest<Buffer, Buffer>(SUBSCRIBE, id, id, hello);
    call.on('data', () => {
      resolve('accepted');
      call.cancel();
    });
    call.on('error', (e: grpc.ServiceError) => resolve(e.details));
  }).finally(() => client.close());
}

describe('collective peer authentication (grpc)', () => {
  it('refuses every intruder with a reason while the members all-reduce', async () => {
    const jobKey = deriveJobKey('a-job-token-0123456789abcdef', 'job');
    const key = deriveGenerationKey(jobKey, 'job', 'incarnation-1', 4);
    const a = await GrpcTransport.listen({});
    const b = await GrpcTransport.listen({});
    const peers = [
      { rank: 0, address: a.address },
      { rank: 1, address: b.address },
    ];
    await Promise.all([
      a.connect(peers, { jobId: 'job', generation: 4, rank: 0, timeoutMs: 5000, peerKey: key }),
      b.connect(peers, { jobId: 'job', generation: 4, rank: 1, timeoutMs: 5000, peerKey: key }),
    ]);
    const ca = new Collective(a);
    const cb = new Collective(b);
    try {
      const tag: Hello = { jobId: 'job', generation: 4, rank: 1, worldSize: 2 };
      const genuine = encodeHello({ ...tag, proof: proveHello(key, tag, 0) });
      const attempts: [string, Buffer, RegExp][] = [
        ['no proof', encodeHello(tag), /^refused: no proof of membership/],
        [
          'a wrong key',
          encodeHello({ ...tag, proof: proveHello(randomBytes(32), tag, 0) }),
          /^refused: bad proof of membership/,
        ],
        [
          "the previous generation's key",
          encodeHello({
            ...tag,
            proof: proveHello(deriveGenerationKey(jobKey, 'job', 'incarnation-1', 3), tag, 0),
          }),
          /^refused: bad proof of membership/,
        ],
        [
          'a proof made for rank 1, sent to rank 0',
          encodeHello({ ...tag, proof: proveHello(key, tag, 1) }),
          /^refused: bad proof of membership/,
        ],
        [
          'a proof two minutes old',
          encodeHello({ ...tag, proof: proveHello(key, tag, 0, Date.now() - 120_000) }),
          /^refused: stale proof of membership/,
        ],
        // A genuine hello (as captured on the wire): the rank it claims is taken, and sent again it is a replay.
        ['a genuine hello for a taken rank', genuine, /^refused: rank 1 is already subscribed/],
        ['the same hello replayed', genuine, /^refused: replayed hello \(nonce already used\)/],
      ];
      // The members keep reducing while the intruder knocks.
      const reduce = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const [ra, rb] = await Promise.all([
            ca.allReduce(Float32Array.of(1, 2 + i), { step: i }),
            cb.allReduce(Float32Array.of(10, 20), { step: i }),
          ]);
          assert.deepEqual(Array.from(ra), [11, 22 + i]);
          assert.deepEqual(Array.from(rb), [11, 22 + i]);
        }
      };
      const before = a.stats().foreignRefused;
      const knocks = (async () => {
        for (const [what, hello, expected] of attempts) {
          const details = await subscribe(a.address, hello);
          assert.match(details, expected, what);
          // Nothing names this rank's generation or rank to a caller without a proof.
          if (!/already subscribed/.test(details))
            assert.doesNotMatch(details, /generation \d|rank 0|\b4\b/, what);
        }
      })();
      await Promise.all([knocks, reduce(20)]);
      assert.equal(a.stats().foreignRefused - before, attempts.length);
      await reduce(3);
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });

  it('members with different keys do not form a mesh; the tcp transport refuses a peer key', async () => {
    const a = await GrpcTransport.listen({});
    const b = await GrpcTransport.listen({});
    const peers = [
      { rank: 0, address: a.address },
      { rank: 1, address: b.address },
    ];
    const results = await Promise.allSettled([
      a.connect(peers, { jobId: 'job', generation: 1, rank: 0, timeoutMs: 1500, peerKey: randomBytes(32) }),
      b.connect(peers, { jobId: 'job', generation: 1, rank: 1, timeoutMs: 1500, peerKey: randomBytes(32) }),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    );
    await Promise.all([a.close(), b.close()]);
    const t = await TcpTransport.listen({});
    await assert.rejects(
      t.connect([{ rank: 0, address: t.address }], {
        jobId: 'job',
        generation: 1,
        rank: 0,
        peerKey: randomBytes(32),
      }),
      (e: Error) => e instanceof CollectiveConfigError && /cannot prove membership/.test(e.message),
    );
    await t.close();
    await assert.rejects(
      GrpcTransport.listen({}).then((g) =>
        g
          .connect([{ rank: 0, address: g.address }], {
            jobId: 'job',
            generation: 1,
            rank: 0,
            peerKey: new Uint8Array(8),
          })
          .finally(() => g.close()),
      ),
      /peerKey must be at least 32 bytes/,
    );
  });
});
