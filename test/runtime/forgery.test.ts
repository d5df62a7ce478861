/**
 * Nobody can forge the control plane (issue 17 item 6): while a real job runs (nats-server, coordinator, two
 * workers as processes), a client on NATS that reads everything (incarnation, generation and step are in the
 * clear) forges every message type unsealed and sealed with a wrong key, tampers with a real sealed message and
 * replays the real sealed ones it captured. Every one is refused, and the job completes with the single-process
 * run's parameters (nothing was applied, skipped, re-formed or stopped). Then a dead worker's heartbeats, forged
 * and replayed, do not keep it in the job.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { PROTOCOL_VERSION, subjects, UNAUTHENTICATED_JOIN } from '../../src/control/protocol.js';
import { natsSkipReason } from '../helpers/nats.js';
import {
  bankParams,
  expectExit,
  firstDifference,
  openBank,
  startCoordinator,
  startWorker,
  testSealer,
} from '../helpers/runtime-fixture.js';
import { runtimeSuite } from '../helpers/runtime-suite.js';
import { SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

const WRONG = 'wrong-token-0123456789abcdef';
const TYPES = [
  'join',
  'heartbeat',
  'leave',
  'ready',
  'step-done',
  'checkpoint-done',
  'error',
  'generation',
  'step',
  'checkpoint',
  'stop',
] as const;

interface Captured {
  subject: string;
  data: Uint8Array;
  body: Record<string, unknown>;
}

/** Records every message on the job's subjects with its (readable) body. */
function snoop(nc: NatsConnection, job: string): Captured[] {
  const seen: Captured[] = [];
  nc.subscribe(`promptmesh.${job}.>`, {
    callback: (_e, m) => {
      try {
        const env = JSON.parse(new TextDecoder().decode(m.data));
        seen.push({ subject: m.subject, data: m.data, body: JSON.parse(env.b) });
      } catch {
        // not a sealed message (our own forgeries)
      }
    },
  });
  return seen;
}

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

describe('runtime: forged and replayed control messages', { skip: natsSkipReason() }, () => {
  const suite = runtimeSuite({ jobId: 'forge', steps: [30, 4], reference: true });

  test('every message type forged, tampered or replayed is refused; the job completes unchanged', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const subj = subjects('forge');
    const a = {
      natsUrl: suite.nats.url,
      jobFile: suite.fx.jobFile,
      bankDir: suite.fx.bankDir,
      coordinatorArgs: ['--checkpoint-every', '5'],
    };
    const nc = await connect({ servers: suite.nats.url });
    const seen = snoop(nc, 'forge');
    const coord = startCoordinator({ ...a, workers: 2 });
    const ws = [startWorker({ ...a, id: 'w0' }), startWorker({ ...a, id: 'w1' })];
    suite.procs.push(coord, ...ws);
    await coord.waitFor(/committed at stage 0 step 10/);
    const lastStep = [...seen].reverse().find((c) => c.body.type === 'step')!;
    assert.ok(lastStep, 'saw a step plan');
    const { incarnation, generation, step } = lastStep.body as {
      incarnation: string;
      generation: number;
      step: number;
    };
    // What the job itself sent so far (our forgeries sealed with a wrong key would parse too).
    const real = [...seen];
    const captured = (type: string) => real.find((c) => c.body.type === type);
    // What each type would say if forged by someone who read the subjects: the live incarnation and generation.
    const forged: Record<(typeof TYPES)[number], [string, Record<string, unknown>]> = {
      join: [
        subj.join,
        {
          type: 'join',
          workerId: 'evil',
          jobId: 'forge',
          protocol: PROTOCOL_VERSION,
          address: '127.0.0.1:1',
        },
      ],
      heartbeat: [subj.heartbeat, { type: 'heartbeat', workerId: 'evil', incarnation, generation, step }],
      leave: [subj.leave, { type: 'leave', workerId: 'w0', incarnation, reason: 'forged' }],
      ready: [subj.report, { type: 'ready', incarnation, generation: generation + 1, workerId: 'w0', step }],
      'step-done': [subj.report, { ...captured('step-done')!.body, step, loss: 99, checksum: 'forged' }],
      'checkpoint-done': [
        subj.report,
        {
          type: 'checkpoint-done',
          incarnation,
          generation,
          workerId: 'w0',
          stage: 0,
          step,
          version: 'forged',
        },
      ],
      error: [
        subj.report,
        { type: 'error', incarnation, generation, workerId: 'w0', step, error: 'forged', fatal: true },
      ],
      generation: [
        subj.ctl,
        { ...captured('generation')!.body, generation: generation + 1, members: [], step: 0 },
      ],
      step: [subj.ctl, { ...lastStep.body, step: step + 1, units: [], owners: [] }],
      checkpoint: [
        subj.ctl,
        {
          ...(captured('checkpoint')?.body ?? {}),
          type: 'checkpoint',
          incarnation,
          generation,
          step,
          final: true,
        },
      ],
      stop: [subj.ctl, { type: 'stop', incarnation, reason: 'job complete' }],
    };
    const wrong = testSealer('forge', WRONG, 'coordinator:forged');
    const send = async (subject: string, data: Uint8Array) => {
      if (subject !== subj.join) return nc.publish(subject, data);
      // A join is a request: an unauthenticated one gets the generic refusal, nothing about the job.
      const res = await nc.request(subject, data, { timeout: 5000 });
      assert.deepEqual(JSON.parse(new TextDecoder().decode(res.data)), {
        type: 'refused',
        reason: UNAUTHENTICATED_JOIN,
      });
    };
    // One of each kind first (each receiver logs its first refusals, then only counts them).
    const stepDone = captured('step-done')!;
    const tampered = JSON.parse(new TextDecoder().decode(stepDone.data));
    tampered.b = tampered.b.replace(/"loss":[^,]+/, '"loss":99');
    const firstCtl = captured('step')!;
    const tamperedCtl = JSON.parse(new TextDecoder().decode(firstCtl.data));
    tamperedCtl.b = tamperedCtl.b.replace(/"step":\d+/, `"step":${step + 2}`);
    for (const [subject, data] of [
      [subj.report, enc(forged.error[1])],
      [subj.report, wrong.seal(subj.report, forged.error[1])],
      [subj.report, stepDone.data],
      [subj.report, enc(tampered)],
      [subj.ctl, enc(forged.stop[1])],
      [subj.ctl, wrong.seal(subj.ctl, forged.stop[1])],
      [subj.ctl, firstCtl.data],
      [subj.ctl, enc(tamperedCtl)],
    ] as [string, Uint8Array][]) {
      await send(subject, data);
    }
    // Then every type: unsealed, sealed with a wrong key, and each captured real one replayed.
    const replayed = new Set<string>();
    for (const type of TYPES) {
      const [subject, body] = forged[type];
      await send(subject, enc(body));
      await send(subject, wrong.seal(subject, body));
      for (const c of real.filter((x) => x.body.type === type).slice(0, 3)) {
        await send(c.subject, c.data);
        replayed.add(type);
      }
    }
    t.diagnostic(`replayed captured ${[...replayed].join(', ')}; the others were only forged`);
    // Every type the job had sent by now was replayed.
    for (const type of ['join', 'heartbeat', 'ready', 'step-done', 'checkpoint-done', 'generation', 'step']) {
      assert.ok(replayed.has(type), `replayed ${type}`);
    }
    await nc.flush();

    assert.equal(await expectExit(coord), 0, coord.output());
    for (const w of ws) assert.equal(await expectExit(w, 20_000), 0, w.output());
    await nc.close();
    const out = coord.output();
    assert.match(out, /refused a message on promptmesh\.forge\.report: not a sealed message/);
    assert.match(out, /refused a message on promptmesh\.forge\.report: bad MAC/);
    assert.match(out, /refused a message on promptmesh\.forge\.report: replayed message/);
    for (const w of ws) {
      assert.match(w.output(), /refused a control message: not a sealed message/);
      assert.match(w.output(), /refused a control message: bad MAC/);
      assert.match(w.output(), /refused a control message: replayed message/);
      assert.doesNotMatch(w.output(), /forged/);
    }
    // Nothing forged acted: no failure, no leave, no stranger, one generation per stage, the reference parameters.
    assert.doesNotMatch(out, /failed at step|worker w0 left|evil|forged|stopping the job/);
    assert.deepEqual(
      [...out.matchAll(/generation (\d+) \(/g)].map((m) => m[1]),
      ['1', '2'],
    );
    const bank = openBank(suite.fx.bankDir);
    for (const [i, ref] of [await bank.get('forge.s1'), await bank.get('forge@head')].entries()) {
      const diff = firstDifference(
        suite.reference[i]!,
        await bankParams(bank, ref.id, suite.reference[i]!.keys()),
      );
      assert.equal(diff, undefined, `stage ${i + 1}: ${diff}`);
    }
  });

  test("a dead worker's forged and replayed heartbeats do not keep it in the job", async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const job = suite.fx.writeJob('dead.json', (j) => {
      j.stages[0].train.steps = 300;
      j.stages.length = 1;
      return j;
    });
    const a = { natsUrl: suite.nats.url, jobFile: job, bankDir: `${suite.fx.bankDir}-dead` };
    const nc = await connect({ servers: suite.nats.url });
    const seen = snoop(nc, 'forge');
    const coord = startCoordinator({
      ...a,
      min: 1,
      max: 2,
      coordinatorArgs: ['--heartbeat-timeout-ms', '2000', '--checkpoint-every', '20'],
    });
    const ws = [startWorker({ ...a, id: 'w0' }), startWorker({ ...a, id: 'w1' })];
    suite.procs.push(coord, ...ws);
    await coord.waitFor(/generation \d+ \(.*\): (w0, w1|w1, w0) from step/, 120_000);
    await new Promise((r) => setTimeout(r, 1000));
    const beats = seen.filter((c) => c.body.type === 'heartbeat' && c.body.workerId === 'w1');
    assert.ok(beats.length > 0, 'captured heartbeats of w1');
    const latest = beats.at(-1)!;
    ws[1]!.kill('SIGKILL');
    const killedAt = Date.now();
    const wrong = testSealer('forge', WRONG, 'worker:w1/heartbeat');
    // Keep w1 "alive" the three ways an outsider could: unsealed, wrong key, and its own captured beats replayed.
    const forger = setInterval(() => {
      nc.publish(latest.subject, enc({ ...latest.body, progress: Date.now() }));
      nc.publish(latest.subject, wrong.seal(latest.subject, { ...latest.body, progress: Date.now() }));
      for (const b of beats.slice(-5)) nc.publish(b.subject, b.data);
    }, 200);
    try {
      await coord.waitFor(/worker w1 missed heartbeats for \d+ ms: declared dead/, 30_000);
      t.diagnostic(`w1 declared dead ${((Date.now() - killedAt) / 1000).toFixed(1)} s after kill -9`);
    } finally {
      clearInterval(forger);
    }
    assert.equal(await expectExit(coord, 180_000), 0, coord.output());
    assert.equal(await expectExit(ws[0]!, 20_000), 0, ws[0]!.output());
    await nc.close();
    assert.match(
      coord.output(),
      /refused a message on promptmesh\.forge\.heartbeat: (not a sealed message|bad MAC|replayed)/,
    );
    assert.equal((await openBank(a.bankDir).get('forge@head')).step, 300);
  });
});
