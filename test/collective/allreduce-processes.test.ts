/**
 * All-reduce between real worker processes on loopback over gRPC: every world size from 1 to 5, odd lengths and
 * lengths not divisible by N, both algorithms, sum and mean, 16-bit wires, 64 MiB buffers, and what happens when a
 * worker is killed or frozen mid-collective. Each worker checks its result against a float64 sum (bound in
 * reference.ts) and reports a hash of the result's bits, so the test also proves the replicas are bit-identical.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkerGroup, type WorkerResult } from './group.js';

function assertCorrect(results: WorkerResult[], what: string, algorithm?: string): void {
  for (const [rank, r] of results.entries()) {
    assert.ok(r.ok, `${what}: rank ${rank} failed: ${r.name}: ${r.message}`);
    assert.equal(r.violations, 0, `${what}: rank ${rank} outside the bound: ${JSON.stringify(r.firstBad)}`);
    assert.equal(r.unchanged, true, `${what}: rank ${rank}'s input was modified`);
    if (algorithm) assert.equal(r.algorithm, algorithm, `${what}: rank ${rank} ran ${r.algorithm}`);
  }
  const hashes = new Set(results.map((r) => r.hash));
  assert.equal(hashes.size, 1, `${what}: ranks hold different results (hashes ${[...hashes].join(', ')})`);
}

const LENGTHS = [1, 2, 3, 5, 7, 1023, 4099, 65_537, 262_147];

describe('all-reduce between worker processes', { concurrency: false }, () => {
  for (const n of [1, 2, 3, 4, 5]) {
    it(`N=${n}: ring and halving-doubling, sum and mean, lengths 1..262147`, async () => {
      const g = await WorkerGroup.start(n);
      try {
        let step = 0;
        for (const length of LENGTHS) {
          for (const algorithm of ['ring', 'halving-doubling'] as const) {
            for (const op of length % 2 ? (['sum', 'mean'] as const) : (['sum'] as const)) {
              const what = `N=${n} length=${length} ${algorithm} ${op}`;
              assertCorrect(
                await g.allReduce({ step: step++, seed: step, length, algorithm, op }),
                what,
                algorithm,
              );
            }
          }
        }
      } finally {
        await g.close();
      }
    });
  }

  it('auto picks halving-doubling below the crossover and the ring above it (N=4)', async () => {
    const g = await WorkerGroup.start(4);
    try {
      assertCorrect(await g.allReduce({ step: 1, seed: 1, length: 1000 }), 'small auto', 'halving-doubling');
      assertCorrect(await g.allReduce({ step: 2, seed: 2, length: 1 << 20 }), 'large auto', 'ring');
    } finally {
      await g.close();
    }
  });

  for (const n of [3, 4]) {
    it(`N=${n}: f16 and bf16 on the wire stay within their rounding bound and bit-identical`, async () => {
      const g = await WorkerGroup.start(n);
      try {
        let step = 10;
        for (const wire of ['f16', 'bf16'] as const) {
          for (const algorithm of ['ring', 'halving-doubling'] as const) {
            for (const op of ['sum', 'mean'] as const) {
              const what = `N=${n} ${wire} ${algorithm} ${op}`;
              assertCorrect(
                await g.allReduce({ step: step++, seed: step, length: 100_003, wire, algorithm, op }),
                what,
              );
            }
          }
        }
      } finally {
        await g.close();
      }
    });
  }

  it('64 MiB buffers: N=2 (exactly 64 MiB) and N=3 (64 MiB + 12 bytes, not divisible by 3)', async () => {
    for (const [n, length] of [
      [2, 16 * 1024 * 1024],
      [3, 16 * 1024 * 1024 + 3],
    ] as const) {
      const g = await WorkerGroup.start(n, { timeoutMs: 60_000 });
      try {
        assertCorrect(await g.allReduce({ step: 1, seed: 64, length }), `N=${n} 64 MiB`, 'ring');
      } finally {
        await g.close();
      }
    }
  });

  it('SIGKILL of one worker mid-collective fails the others within the timeout, naming the peer and step', async () => {
    const timeoutMs = 5000;
    const g = await WorkerGroup.start(4, { timeoutMs });
    try {
      const victim = 2;
      const pending = g.allReduce({ step: 7, seed: 7, length: 16 * 1024 * 1024, ranks: [0, 1, 3] });
      const started = Date.now();
      setTimeout(() => g.children[victim]!.kill('SIGKILL'), 400);
      const results = await pending;
      const elapsed = Date.now() - started;
      assert.ok(elapsed < timeoutMs + 3000, `survivors took ${elapsed} ms`);
      const victimAddress = g.peers[victim]!.address;
      for (const r of results) {
        assert.equal(r.ok, false, 'a survivor returned a result although a peer died mid-collective');
        assert.ok(r.ms <= timeoutMs + 2000, `a survivor failed only after ${r.ms} ms`);
        assert.match(r.message!, new RegExp(`rank ${victim} \\(${victimAddress.replace(/\./g, '\\.')}\\)`));
        assert.match(r.message!, /step 7\b/);
      }
    } finally {
      await g.close();
    }
  });

  it('a frozen (SIGSTOP) worker makes the others time out after timeoutMs, naming it', async () => {
    const timeoutMs = 1500;
    const g = await WorkerGroup.start(3, { timeoutMs });
    const victim = 1;
    try {
      const pending = g.allReduce({ step: 3, seed: 3, length: 16 * 1024 * 1024, ranks: [0, 2] });
      setTimeout(() => g.children[victim]!.kill('SIGSTOP'), 300);
      const results = await pending;
      for (const r of results) {
        assert.equal(r.ok, false);
        assert.ok(r.ms < timeoutMs + 3000, `took ${r.ms} ms`);
        assert.match(r.message!, new RegExp(`rank ${victim} \\(`));
        assert.match(r.message!, /step 3\b/);
      }
      assert.ok(
        results.some((r) => r.name === 'CollectiveTimeoutError'),
        `no rank reported a timeout: ${results.map((r) => `${r.name}: ${r.message}`).join(' | ')}`,
      );
    } finally {
      g.children[victim]!.kill('SIGKILL');
      await g.close();
    }
  });
});
