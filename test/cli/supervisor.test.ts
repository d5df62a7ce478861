/**
 * The restart policy of `promptmesh up` (src/cli/supervisor.ts): the budget and backoff with a clock, and the
 * supervisor with real child processes (tiny node scripts that exit or get killed).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import {
  DEFAULT_RESTART_POLICY,
  type ExitStatus,
  type ExitVerdict,
  RestartBudget,
  type RestartPolicy,
  Supervisor,
} from '../../src/cli/supervisor.js';

const policy: RestartPolicy = {
  maxRestarts: 3,
  initialBackoffMs: 1000,
  maxBackoffMs: 3000,
  healthyAfterMs: 60_000,
};

describe('restart budget', () => {
  test('backoff doubles up to its cap, and the budget runs out after maxRestarts', () => {
    const b = new RestartBudget(policy);
    assert.deepEqual(b.died(10), { restart: true, attempt: 1, delayMs: 1000 });
    assert.deepEqual(b.died(10), { restart: true, attempt: 2, delayMs: 2000 });
    assert.deepEqual(b.died(10), { restart: true, attempt: 3, delayMs: 3000 });
    assert.deepEqual(b.died(10), { restart: false });
  });

  test('a healthy run (healthyAfterMs) earns the budget and the first backoff back', () => {
    const b = new RestartBudget(policy);
    for (let i = 0; i < 3; i++) assert.equal(b.died(10).restart, true);
    assert.deepEqual(b.died(60_000), { restart: true, attempt: 1, delayMs: 1000 });
  });

  test("a process's floor (a worker waits out the heartbeat timeout) wins over a shorter backoff", () => {
    const b = new RestartBudget(policy, 5000);
    assert.deepEqual(b.died(10), { restart: true, attempt: 1, delayMs: 5000 });
  });

  test('maxRestarts 0 never restarts', () => {
    assert.deepEqual(new RestartBudget({ ...DEFAULT_RESTART_POLICY, maxRestarts: 0 }).died(10), {
      restart: false,
    });
  });
});

/** A child that runs `code` (node -e). */
const node = (code: string) => spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
const fast: RestartPolicy = {
  maxRestarts: 2,
  initialBackoffMs: 50,
  maxBackoffMs: 100,
  healthyAfterMs: 60_000,
};

describe('supervisor with real processes', () => {
  test('a killed process is restarted until its budget is spent, then given up', async () => {
    const lines: string[] = [];
    const ends: { state: string; e: ExitStatus }[] = [];
    let ended: () => void = () => {};
    const over = new Promise<void>((r) => {
      ended = r;
    });
    const sup = new Supervisor(fast, {
      log: (l) => lines.push(l),
      onEnd: (_p, state, e) => {
        ends.push({ state, e });
        ended();
      },
    });
    const p = await sup.add({
      name: 'victim',
      start: () => {
        const c = node('setInterval(() => {}, 1000)');
        // Killed as soon as it runs: a crash loop.
        setTimeout(() => c.kill('SIGKILL'), 100);
        return c;
      },
      classify: () => 'restart',
    });
    await over;
    assert.equal(p.starts, 3, lines.join('\n'));
    assert.equal(p.state, 'given-up');
    assert.deepEqual(ends, [{ state: 'given-up', e: { code: null, signal: 'SIGKILL' } }]);
    assert.match(lines.join('\n'), /victim killed by SIGKILL: restart 1 of the 2 allowed in 0\.1 s/);
    assert.match(lines.join('\n'), /victim killed by SIGKILL: out of restarts, giving up on it/);
  });

  test("'done' and 'fatal' exits are not restarted; stop() ends running children and restarts nothing", async () => {
    const ends: string[] = [];
    const sup = new Supervisor(fast, { log: () => {}, onEnd: (p, state) => ends.push(`${p.name}:${state}`) });
    const classify = (e: ExitStatus): ExitVerdict =>
      e.code === 0 ? 'done' : e.code === 3 ? 'fatal' : 'restart';
    const done = await sup.add({ name: 'done', start: () => node('process.exit(0)'), classify });
    const fatal = await sup.add({ name: 'fatal', start: () => node('process.exit(3)'), classify });
    const long = await sup.add({ name: 'long', start: () => node('setInterval(() => {}, 1000)'), classify });
    await Promise.all([done.exited(), fatal.exited()]);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(ends.sort(), ['done:done', 'fatal:fatal']);
    assert.equal(done.starts, 1);
    assert.equal(fatal.starts, 1);
    assert.equal(long.state, 'running');
    await sup.stop({ graceMs: 2000 });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(long.state, 'stopped');
    assert.equal(long.starts, 1);
  });

  test('a start that throws counts as a death and is retried', async () => {
    let tries = 0;
    const sup = new Supervisor(fast, { log: () => {}, onEnd: () => {} });
    const p = await sup.add({
      name: 'flaky',
      start: () => {
        tries += 1;
        if (tries < 2) throw new Error('port taken');
        return node('setInterval(() => {}, 1000)');
      },
      classify: () => 'restart',
    });
    for (let i = 0; i < 50 && p.state !== 'running'; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(p.state, 'running');
    assert.equal(tries, 2);
    await sup.stop();
  });
});
