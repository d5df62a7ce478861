/**
 * Item 3 of the runtime issue: N workers (real coordinator and worker processes over a real nats-server) end
 * with the same parameters as the single-process Trainer on the same job. The global batches are the same by
 * construction (the mixture sampler is a pure function of seed and step); what differs is the summation order of
 * the gradient sums (per-worker micro-batches, then the ring all-reduce, vs one process's micro-batches in a row).
 * The backbone trains with dropout (the fixture checkpoint's dropout_rate 0.1): each example's masks are a function
 * of (seed, step, example), so sharding must not change them either.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { selectBackend } from '../../src/backend/index.js';
import { readT5Config } from '../../src/model/checkpoint/index.js';
import { testBackend } from '../helpers/backend.js';
import { type NatsServerHandle, natsSkipReason, startNatsServer } from '../helpers/nats.js';
import {
  bankParams,
  type CliProcess,
  expectExit,
  killAll,
  makeRuntimeFixture,
  paramsDiff,
  type RuntimeFixture,
  referenceRun,
  startCoordinator,
  startWorker,
} from '../helpers/runtime-fixture.js';
import { SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

/**
 * Relative tolerance (max |a-b| / max |a| per tensor). Float32 sums in another order differ by a few ulps
 * (~1e-7 relative) per step; AdamW divides by sqrt(v), which can amplify a difference in a near-zero gradient
 * component up to the learning rate's scale, and 10 steps compound it. Measured worst: 3e-5 (ATTEMPT's
 * attention.down, 3 workers), 1e-7 for the prompts; a lost, doubled or
 * mis-sharded step moves parameters by >1e-2 relative (the learning rate is 0.3).
 */
const TOLERANCE = 1e-4;

describe('runtime: N workers = single-process trainer', { skip: natsSkipReason() }, () => {
  let fx: RuntimeFixture | undefined;
  let nats: NatsServerHandle;
  let reference: Map<string, Float32Array>[];
  const procs: CliProcess[] = [];

  before(async () => {
    fx = await makeRuntimeFixture({ jobId: 'equiv' });
    if (!fx) return;
    nats = await startNatsServer();
    await selectBackend({ requested: testBackend() });
    reference = await referenceRun(fx.job());
  });

  test('the job trains with dropout (so the equivalence below covers its masks)', (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const job = fx.job();
    const rates = job.stages.map((s) => s.train.dropout ?? readT5Config(job.backbone.checkpoint).dropoutRate);
    t.diagnostic(`dropout per stage: ${rates.join(', ')}`);
    assert.ok(rates.every((r) => r > 0));
  });
  after(async () => {
    await killAll(procs);
    await nats?.stop();
    fx?.cleanup();
  });

  for (const n of [2, 3]) {
    test(`${n} workers: both stages' final bank versions equal the single-process parameters`, async (t) => {
      if (!fx) return t.skip(SPM_MISSING_MESSAGE);
      const bankDir = `${fx.bankDir}-${n}`;
      const a = { natsUrl: nats.url, jobFile: fx.jobFile, bankDir };
      const coord = startCoordinator({ ...a, workers: n });
      procs.push(coord);
      const workers = Array.from({ length: n }, (_, i) => startWorker({ ...a, id: `w${i}` }));
      procs.push(...workers);
      assert.equal(await expectExit(coord), 0, coord.output());
      for (const w of workers) assert.equal(await expectExit(w, 20_000), 0, w.output());
      // Ranks follow join order, which is up to the processes; every worker must be a member from step 0.
      const gen1 = /generation 1 \(start\): (.*) from step 0/.exec(coord.output());
      assert.deepEqual(
        gen1?.[1]?.split(', ').sort(),
        workers.map((w) => w.name),
        coord.output(),
      );
      const { DirectoryStore, PromptBank } = await import('../../src/bank/index.js');
      const bank = new PromptBank(new DirectoryStore(bankDir), { onWarning: () => {} });
      const stage1 = await bank.get('equiv.s1');
      const stage2 = await bank.get('equiv@head');
      assert.equal(stage1.step, 6);
      assert.equal(stage2.step, 4);
      assert.equal(stage2.extra?.stageName, 's2');
      for (const [i, v] of [stage1, stage2].entries()) {
        const ref = reference[i]!;
        const got = await bankParams(bank, v.id, ref.keys());
        const d = paramsDiff(ref, got);
        t.diagnostic(
          `${n} workers, stage ${i + 1}: worst relative difference ${d.worst.toExponential(2)} (${d.name})`,
        );
        assert.ok(
          d.worst <= TOLERANCE,
          `stage ${i + 1}: '${d.name}' differs by ${d.worst} (relative) > ${TOLERANCE}`,
        );
      }
    });
  }
});
