import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  Collective,
  FusionError,
  fuse,
  GrpcTransport,
  planLayout,
  unfuse,
} from '../../src/collective/index.js';

describe('fusion', () => {
  it('lays tensors out in sorted-name order whatever the insertion order, and only the planned ones', () => {
    const a = new Map([
      ['z.bias', Float32Array.of(9)],
      ['a.prompt', Float32Array.of(1, 2)],
      ['m.unplanned', Float32Array.of(5, 5, 5)],
      ['B.upper', Float32Array.of(7)],
    ]);
    const b = {
      'B.upper': Float32Array.of(7),
      'a.prompt': Float32Array.of(1, 2),
      'z.bias': Float32Array.of(9),
    };
    const plan = ['z.bias', 'a.prompt', 'B.upper', 'a.prompt'];
    const fa = fuse(a, plan);
    const fb = fuse(b, plan);
    // Code-unit order: uppercase before lowercase, independent of the machine's locale.
    assert.deepEqual(fa.layout.names, ['B.upper', 'a.prompt', 'z.bias']);
    assert.deepEqual(fa.layout, fb.layout);
    assert.deepEqual(Array.from(fa.buffer), [7, 1, 2, 9]);
    const parts = unfuse(fa.buffer, fa.layout);
    assert.deepEqual([...parts.keys()], ['B.upper', 'a.prompt', 'z.bias']);
    assert.deepEqual(Array.from(parts.get('a.prompt')!), [1, 2]);
    assert.equal(parts.get('a.prompt')!.buffer, fa.buffer.buffer, 'unfuse returns views');
  });

  it('fills planned tensors this worker did not touch with zeros, given their lengths', () => {
    const f = fuse({ 'task.b': Float32Array.of(3) }, ['task.a', 'task.b'], {
      lengths: { 'task.a': 2, 'task.b': 1 },
    });
    assert.deepEqual(Array.from(f.buffer), [0, 0, 3]);
    assert.throws(() => fuse({}, ['task.a']), FusionError);
    assert.throws(() => fuse({ x: Float32Array.of(1) }, ['x'], { lengths: { x: 2 } }), /has 1 elements but/);
    assert.throws(
      () =>
        unfuse(
          new Float32Array(2),
          planLayout(['x'], () => 3),
        ),
      FusionError,
    );
  });

  describe('fused sparse all-reduce among three ranks', () => {
    const comms: Collective[] = [];
    before(async () => {
      const ts = await Promise.all([0, 1, 2].map(() => GrpcTransport.listen({})));
      const peers = ts.map((t, rank) => ({ rank, address: t.address }));
      await Promise.all(
        ts.map((t, rank) => t.connect(peers, { jobId: 'fusion', generation: 1, rank, timeoutMs: 10_000 })),
      );
      comms.push(...ts.map((t) => new Collective(t)));
    });
    after(async () => {
      await Promise.all(comms.map((c) => c.close()));
    });

    it('reduces exactly the planned tensors, per name, whatever each rank touched', async () => {
      const lengths = { 'prompt.rte': 5, 'prompt.mnli': 3, 'attn.w': 4, 'prompt.qqp': 2 };
      const plan = ['prompt.rte', 'attn.w', 'prompt.mnli'];
      // Rank r touched a different subset, in a different insertion order; 'prompt.qqp' is not in this step's plan.
      const touched: Record<string, Float32Array>[] = [
        {
          'attn.w': Float32Array.of(1, 1, 1, 1),
          'prompt.rte': Float32Array.of(1, 2, 3, 4, 5),
          'prompt.qqp': Float32Array.of(99, 99),
        },
        { 'prompt.mnli': Float32Array.of(10, 20, 30), 'attn.w': Float32Array.of(2, 2, 2, 2) },
        { 'prompt.rte': Float32Array.of(100, 100, 100, 100, 100) },
      ];
      const fused = touched.map((t) => fuse(t, plan, { lengths }));
      assert.equal(fused[0]!.buffer.length, 12);
      const results = await Promise.all(
        comms.map((c, r) => c.allReduce(fused[r]!.buffer, { step: 1, op: 'sum' })),
      );
      for (const [r, out] of results.entries()) {
        const parts = unfuse(out, fused[r]!.layout);
        assert.deepEqual([...parts.keys()], ['attn.w', 'prompt.mnli', 'prompt.rte']);
        assert.deepEqual(Array.from(parts.get('attn.w')!), [3, 3, 3, 3]);
        assert.deepEqual(Array.from(parts.get('prompt.mnli')!), [10, 20, 30]);
        assert.deepEqual(Array.from(parts.get('prompt.rte')!), [101, 102, 103, 104, 105]);
      }
    });

    it('refuses to sum buffers of different plans (lengths differ) with an error naming the peer', async () => {
      const results = await Promise.allSettled(
        comms.map((c, r) =>
          c.allReduce(new Float32Array(r === 1 ? 13 : 12).fill(1), { step: 2, algorithm: 'ring' }),
        ),
      );
      for (const res of results) assert.equal(res.status, 'rejected');
      const messages = results.map((r) =>
        r.status === 'rejected' ? String((r.reason as Error).message) : '',
      );
      assert.ok(
        messages.some((m) => /different step plans/.test(m)),
        `no plan mismatch reported: ${messages.join(' | ')}`,
      );
    });
  });
});
