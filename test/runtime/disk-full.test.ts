/**
 * A failed checkpoint is not fatal (issue "Recovery that never gives up on a healthy job", item 4), on a real full
 * disk: the bank lives on a small tmpfs that the test fills while the job runs. The worker writing the checkpoint
 * logs ENOSPC as the cause, keeps its state in memory and retries with backoff; once space is freed the version is
 * written and the job completes with the single-process result, no version lost. Needs root (mount); skips
 * with a message otherwise.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { natsSkipReason } from '../helpers/nats.js';
import {
  assertMatchesReference,
  expectExit,
  openBank,
  startCoordinator,
  startWorker,
} from '../helpers/runtime-fixture.js';
import { runtimeSuite } from '../helpers/runtime-suite.js';
import { SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

const JOB = 'diskfull';
const mountPoint = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-tmpfs-'));

/** Mounts a 32 MiB tmpfs; the reason when that is not possible here. */
function mountSkipReason(): string | undefined {
  const noNats = natsSkipReason();
  if (noNats) return noNats;
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', mountPoint], { encoding: 'utf8' });
  return r.status === 0
    ? undefined
    : `cannot mount a tmpfs to fill (needs root): ${(r.stderr || r.error?.message || '').trim()}`;
}

const skip = mountSkipReason();

/** Writes zeros until the filesystem is full; returns the file. */
function fillDisk(dir: string): string {
  const file = path.join(dir, 'filler');
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(1 << 20);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

describe('runtime: a checkpoint on a full disk is retried, not fatal', { skip }, () => {
  const suite = runtimeSuite({ jobId: JOB, steps: [20, 4], reference: true });
  after(() => {
    spawnSync('umount', [mountPoint]);
    fs.rmSync(mountPoint, { recursive: true, force: true });
  });

  test('ENOSPC while checkpointing: logged with its cause, retried, the job completes byte-identical', async (t) => {
    if (!suite.fx) return t.skip(SPM_MISSING_MESSAGE);
    const bankDir = path.join(mountPoint, 'bank');
    const a = {
      natsUrl: suite.nats.url,
      jobFile: suite.fx.jobFile,
      bankDir,
      coordinatorArgs: ['--checkpoint-every', '5'],
    };
    const coord = startCoordinator({ ...a, workers: 1 });
    suite.procs.push(coord);
    const worker = startWorker({ ...a, id: 'w1', extra: ['--metrics-port', '0'] });
    suite.procs.push(worker);
    await coord.waitFor(/committed at stage 0 step 5/, 120_000);
    const filler = fillDisk(mountPoint);
    const failed = await worker.waitFor(
      /checkpoint at step (\d+): write failed \(disk_full: [^)]*ENOSPC[^)]*\); retry 1/,
      60_000,
    );
    await worker.waitFor(/checkpoint at step \d+: write failed \(disk_full[^;]*; retry 2/, 30_000);
    // The cause is counted where an alert can see it.
    const [, url] = await worker.waitFor(/metrics on (http:\/\/\S+)/, 5_000);
    const scrape = await (await fetch(url!)).text();
    const counted = scrape.match(
      /promptmesh_checkpoint_write_failures_total\{[^}]*reason="disk_full"[^}]*\} (\d+)/,
    );
    assert.ok(counted && Number(counted[1]) >= 2, `disk_full failures counted: ${counted?.[0]}`);
    fs.rmSync(filler);
    assert.equal(await expectExit(coord, 120_000), 0, coord.output());
    assert.equal(await expectExit(worker, 30_000), 0, worker.output());
    const bank = openBank(bankDir);
    const kept = await bank.list({ job: JOB });
    assert.ok(
      kept.some((v) => v.step === Number(failed[1])),
      `the version of step ${failed[1]} was written after the disk had space again`,
    );
    await assertMatchesReference(bank, JOB, [20, 4], suite.reference, 'disk full, then freed', t);
    assert.doesNotMatch(
      coord.output(),
      /failed at step/,
      'the coordinator never saw the failure: the worker retried',
    );
  });
});
