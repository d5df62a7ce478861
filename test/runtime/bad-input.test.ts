/**
 * Bad input never takes the coordinator down (item 7): garbage, oversized, unknown, out-of-order, stale and
 * duplicate messages on the job's subjects from a raw NATS client while a real job runs (each sent unsealed, which
 * is refused by its missing MAC, and sealed with the job key, as a buggy member would send it), which then completes with
 * the single-process run's parameters (so nothing was applied twice or skipped); a corrupt bank blob is refused by
 * its digest without losing a committed version, and a resume from it stops at once (no retries) saying what to do; a half-written manifest breaks neither `bank ls` nor a resume.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { blobDigest, CorruptBlobError, DirectoryStore } from '../../src/bank/index.js';
import { MAX_CONTROL_BYTES, PROTOCOL_VERSION, subjects } from '../../src/control/protocol.js';
import { natsSkipReason } from '../helpers/nats.js';
import {
  bankParams,
  expectExit,
  firstDifference,
  spawnCli,
  startCoordinator,
  startWorker,
  testSealer,
} from '../helpers/runtime-fixture.js';
import { runtimeSuite } from '../helpers/runtime-suite.js';
import { SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

describe('runtime: bad input', { skip: natsSkipReason() }, () => {
  const suite = runtimeSuite({ jobId: 'bad', steps: [30, 4], reference: true });

  test('garbage, oversized, unknown, future, stale and duplicate messages: the job completes unchanged', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const subj = subjects('bad');
    const a = {
      natsUrl: suite.nats.url,
      jobFile: suite.fx.jobFile,
      bankDir: suite.fx.bankDir,
      coordinatorArgs: ['--checkpoint-every', '5'],
    };
    const nc: NatsConnection = await connect({ servers: suite.nats.url });
    // Learn the live incarnation, generation and step the way a snooping client would: from the plans.
    let live: { incarnation: string; generation: number; step: number } | undefined;
    nc.subscribe(subj.ctl, {
      callback: (_e, m) => {
        try {
          const c = JSON.parse(JSON.parse(new TextDecoder().decode(m.data)).b);
          if (c.type === 'step')
            live = { incarnation: c.incarnation, generation: c.generation, step: c.step };
        } catch {
          // our own garbage
        }
      },
    });
    const coord = startCoordinator({ ...a, workers: 2 });
    const ws = [startWorker({ ...a, id: 'w0' }), startWorker({ ...a, id: 'w1' })];
    suite.procs.push(coord, ...ws);
    await coord.waitFor(/committed at stage 0 step 5/);
    assert.ok(live, 'saw a step plan');
    const { incarnation, generation, step } = live;
    const doneBase = {
      incarnation,
      generation,
      workerId: 'w0',
      stage: 0,
      loss: 1,
      tokens: 1,
      examples: 1,
      perTask: {},
      checksum: 'forged',
      timings: { data: 0, forwardBackward: 0, allReduce: 0, optimizer: 0 },
      allReduceBytes: 0,
    };
    const garbage: [string, Uint8Array][] = [];
    for (const s of [subj.join, subj.heartbeat, subj.leave, subj.report, subj.ctl]) {
      garbage.push(
        [s, enc('{not json')],
        [s, enc('null')],
        [s, enc([1, 2, 3])],
        [s, enc({ type: 42 })],
        [s, enc({ type: 'explode', incarnation })],
        [s, new Uint8Array(MAX_CONTROL_BYTES + 1).fill(0x7b)],
        [s, new Uint8Array([0xff, 0xfe, 0x00, 0x80])],
      );
    }
    garbage.push(
      // Missing fields and wrong types.
      [subj.report, enc({ type: 'step-done', incarnation })],
      [subj.heartbeat, enc({ type: 'heartbeat', workerId: { x: 1 }, incarnation, generation, step: 'no' })],
      // A step-done for a future step, and one for the current step from a stale generation and from a stranger.
      [subj.report, enc({ ...doneBase, type: 'step-done', step: step + 1000 })],
      [subj.report, enc({ ...doneBase, type: 'step-done', step, generation: generation - 1 })],
      [subj.report, enc({ ...doneBase, type: 'step-done', step, workerId: 'stranger' })],
      // A stale generation's error (would force a re-formation if it were not fenced) and a foreign incarnation's.
      [
        subj.report,
        enc({ type: 'error', incarnation, generation: generation - 1, workerId: 'w0', step, error: 'stale' }),
      ],
      [
        subj.report,
        enc({
          type: 'error',
          incarnation: 'someone-else',
          generation,
          workerId: 'w0',
          step,
          error: 'foreign',
        }),
      ],
      [
        subj.report,
        enc({
          type: 'checkpoint-done',
          incarnation,
          generation,
          workerId: 'w0',
          stage: 0,
          step: 10,
          version: { evil: true },
        }),
      ],
      // A leave for a member from another incarnation, a heartbeat keeping a stranger alive.
      [subj.leave, enc({ type: 'leave', workerId: 'w0', incarnation: 'someone-else', reason: 'forged' })],
      [subj.heartbeat, enc({ type: 'heartbeat', workerId: 'stranger', incarnation, generation, step })],
      // Control messages the workers must ignore: another incarnation's stop and step.
      [subj.ctl, enc({ type: 'stop', incarnation: 'someone-else', reason: 'forged stop' })],
      [
        subj.ctl,
        enc({
          type: 'step',
          incarnation: 'someone-else',
          generation,
          stage: 0,
          step,
          units: [],
          owners: [],
          touched: [],
        }),
      ],
    );
    const sealer = testSealer('bad');
    const seal = (s: string, d: Uint8Array) => sealer.sealBody(s, new TextDecoder().decode(d));
    for (let round = 0; round < 5; round++) {
      for (const [s, d] of garbage) {
        nc.publish(s, d);
        nc.publish(s, seal(s, d));
      }
    }
    // Sealed requests on the join subject get a sealed refusal with the reason, never silence or a crash.
    const join = async (body: unknown) => {
      const res = await nc.request(subj.join, seal(subj.join, enc(body)), { timeout: 5000 });
      return JSON.parse(JSON.parse(new TextDecoder().decode(res.data)).b);
    };
    const good = { type: 'join', jobId: 'bad', protocol: PROTOCOL_VERSION };
    const dup = await join({ ...good, workerId: 'w0', address: '127.0.0.1:1' });
    assert.equal(dup.type, 'refused');
    assert.match(dup.reason, /worker id 'w0' is already a live member at 127\.0\.0\.1:\d+/);
    assert.match((await join('{oops')).reason, /malformed join request: not JSON/);
    assert.match(
      (await join({ ...good, workerId: 7, address: 'nowhere' })).reason,
      /workerId and address host:port are required/,
    );
    assert.match(
      (await join({ type: 'join' })).reason,
      /malformed join request: 'join' message is missing 'workerId'/,
    );
    await nc.flush();
    assert.equal(await expectExit(coord), 0, coord.output());
    for (const w of ws) assert.equal(await expectExit(w, 20_000), 0, w.output());
    await nc.close();
    const out = coord.output();
    assert.match(out, /dropped a bad message on promptmesh\.bad\.report: message of \d+ bytes exceeds/);
    assert.match(out, /dropped a bad message on promptmesh\.bad\.heartbeat: not JSON/);
    assert.match(out, /unexpected message type 'explode'/);
    assert.match(out, /refused a message on promptmesh\.bad\.\w+: not a sealed message/);
    // Only the two real workers ever took part, in one generation per stage.
    assert.doesNotMatch(out, /replicas diverged|timed out|stranger joined|reported: (stale|foreign)/);
    assert.deepEqual(
      [...out.matchAll(/generation (\d+) \(/g)].map((m) => m[1]),
      ['1', '2'],
    );
    for (const w of ws) assert.match(w.output(), /ignored a malformed control message/);
    const bank = suite.fx.bank();
    for (const [i, ref] of [await bank.get('bad.s1'), await bank.get('bad@head')].entries()) {
      const diff = firstDifference(
        suite.reference[i]!,
        await bankParams(bank, ref.id, suite.reference[i]!.keys()),
      );
      assert.equal(diff, undefined, `stage ${i + 1}: ${diff}`);
    }
  });

  test('a corrupt blob is refused by its digest; no committed version is lost', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const bank = suite.fx.bank();
    const before = await bank.list({ job: 'bad' });
    const mid = before.find((v) => v.step === 15)!;
    const m = await bank.get(mid.id);
    const [name, entry] = Object.entries(m.tensors).find(([n]) => n.startsWith('prompt.'))!;
    const file = new DirectoryStore(suite.fx.bankDir).blobPath(entry.digest);
    const bytes = fs.readFileSync(file);
    bytes[0] = bytes[0]! ^ 0xff;
    fs.writeFileSync(file, bytes);
    try {
      await assert.rejects(bank.load(mid.id), (e: unknown) => {
        assert.ok(e instanceof CorruptBlobError);
        assert.equal(e.version, mid.id);
        assert.equal(e.tensor, name);
        assert.match(e.message, /expected sha256:/);
        assert.equal(e.digest, entry.digest);
        assert.equal(e.actual, blobDigest(bytes));
        return true;
      });
      // Everything else still loads, the listing is whole, the head did not move.
      const after = await bank.list({ job: 'bad' });
      assert.deepEqual(
        after.map((v) => v.id),
        before.map((v) => v.id),
      );
      assert.equal((await bank.get('bad@head')).id, before.find((v) => v.head)!.id);
      await bank.load('bad@head');
      // A resume from the corrupt version stops the coordinator before any worker spends a generation on it
      // (it used to re-form 10 times, ~20 s, and then give up), naming the version, the tensor, both digests and
      // what to do instead; it commits nothing and the head stays.
      const a = { natsUrl: suite.nats.url, jobFile: suite.fx.jobFile, bankDir: suite.fx.bankDir };
      const started = performance.now();
      const coord = startCoordinator({ ...a, workers: 1, coordinatorArgs: ['--from', mid.id] });
      suite.procs.push(coord);
      assert.equal(await expectExit(coord, 60_000), 1, coord.output());
      const seconds = (performance.now() - started) / 1000;
      t.diagnostic(`the coordinator exited ${seconds.toFixed(1)} s after it was spawned`);
      assert.ok(seconds < 10, `took ${seconds.toFixed(1)} s; output:\n${coord.output()}`);
      const out = coord.output();
      const mustSay = [
        `CorruptVersionError: bank version ${mid.id.slice(0, 12)} (--from ${mid.id}, the version job 'bad' resumes from) is corrupt`,
        `tensor '${name}' fails its digest check`,
        `the manifest names ${entry.digest}, the stored bytes hash to ${blobDigest(bytes)}`,
        'Retrying cannot fix this',
        "'promptmesh bank ls --job bad'",
        `--from ${m.parent!.slice(0, 12)}`,
      ];
      for (const text of mustSay) assert.ok(out.includes(text), `missing '${text}' in:\n${out}`);
      assert.doesNotMatch(out, /generation \d+ \(|giving up after/);
      assert.deepEqual(
        (await bank.list({ job: 'bad' })).map((v) => v.id),
        before.map((v) => v.id),
      );
    } finally {
      fs.writeFileSync(
        file,
        bytes.map((b, i) => (i === 0 ? b ^ 0xff : b)),
      );
    }
    await bank.load(mid.id);
  });

  test('a version found corrupt by a worker (after the coordinator checked it) stops the job without retries', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const bank = suite.fx.bank();
    const before = await bank.list({ job: 'bad' });
    const mid = before.find((v) => v.step === 15)!;
    const [name, entry] = Object.entries((await bank.get(mid.id)).tensors).find(([n]) =>
      n.startsWith('prompt.'),
    )!;
    const file = new DirectoryStore(suite.fx.bankDir).blobPath(entry.digest);
    const good = fs.readFileSync(file);
    const a = { natsUrl: suite.nats.url, jobFile: suite.fx.jobFile, bankDir: suite.fx.bankDir };
    const coord = startCoordinator({ ...a, workers: 1, coordinatorArgs: ['--from', mid.id] });
    suite.procs.push(coord);
    // The coordinator has read the version intact; now the blob goes bad before the worker restores it.
    await coord.waitFor(/resuming job 'bad' from bank version \w+ \(stage 0, step 15\)/);
    fs.writeFileSync(
      file,
      good.map((b, i) => (i === 0 ? b ^ 0xff : b)),
    );
    try {
      const w = startWorker({ ...a, id: 'w0' });
      suite.procs.push(w);
      await w.waitFor(/joined job 'bad'/);
      const joinedAt = performance.now();
      assert.equal(await expectExit(coord, 60_000), 1, coord.output());
      const seconds = (performance.now() - joinedAt) / 1000;
      t.diagnostic(`the coordinator stopped ${seconds.toFixed(1)} s after the worker joined`);
      // The worker loads nothing heavy after joining; re-forming would take >= 11 x (4 s heartbeat timeout).
      assert.ok(seconds < 10, `took ${seconds.toFixed(1)} s; output:\n${coord.output()}`);
      const out = coord.output();
      assert.match(
        out,
        new RegExp(
          `worker w0 failed at step \\d+: CorruptVersionError: bank version ${mid.id.slice(0, 12)} \\(the version generation 1 restores\\) is corrupt: tensor '${name.replaceAll('.', '\\.')}' fails its digest check`,
        ),
      );
      assert.match(out, /stopping the job: worker w0 hit an error that retrying cannot fix/);
      assert.equal([...out.matchAll(/generation \d+ \(/g)].length, 1, out);
      assert.doesNotMatch(out, /giving up after/);
      // The worker got the stop and exits 1 (a job stopped unfinished; 0 is only for a completed job); nothing was
      // committed.
      assert.equal(await expectExit(w, 20_000), 1, w.output());
      assert.deepEqual(
        (await bank.list({ job: 'bad' })).map((v) => v.id),
        before.map((v) => v.id),
      );
    } finally {
      fs.writeFileSync(file, good);
    }
    await bank.load(mid.id);
  });

  test('a half-written manifest breaks neither `bank ls` nor a resume', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const bank = suite.fx.bank();
    const head = await bank.get('bad@head');
    const text = fs.readFileSync(path.join(suite.fx.bankDir, 'versions', `${head.id}.json`), 'utf8');
    const bogus = `${'ab'.repeat(32)}`;
    fs.writeFileSync(
      path.join(suite.fx.bankDir, 'versions', `${bogus}.json`),
      text.slice(0, Math.floor(text.length / 2)),
    );
    const ls = spawnCli('bank-ls', ['bank', 'ls', '--bank', suite.fx.bankDir, '--json']);
    suite.procs.push(ls);
    assert.equal(await expectExit(ls, 30_000), 0, ls.output());
    const listed = JSON.parse(
      ls.output().slice(ls.output().indexOf('['), ls.output().lastIndexOf(']') + 1),
    ) as { id: string; step: number }[];
    assert.ok(listed.some((v) => v.id === head.id));
    assert.ok(!listed.some((v) => v.id === bogus));
    assert.match(ls.output(), new RegExp(`${bogus}`), 'the unreadable manifest is named in a warning');
    // The coordinator resumes past it: a larger --steps continues the last stage from the head.
    const a = {
      natsUrl: suite.nats.url,
      jobFile: suite.fx.jobFile,
      bankDir: suite.fx.bankDir,
      extra: ['--steps', '6'],
    };
    const coord = startCoordinator({ ...a, workers: 1 });
    const w = startWorker({ ...a, id: 'w0' });
    suite.procs.push(coord, w);
    assert.equal(await expectExit(coord), 0, coord.output());
    assert.equal(await expectExit(w, 20_000), 0, w.output());
    const now = await bank.get('bad@head');
    assert.equal(now.step, 6);
    assert.equal(now.parent, head.id);
  });
});
