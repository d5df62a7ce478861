/**
 * Control-plane sealing (src/control/message-auth.ts) with an injected clock: what opens, and each way a message is
 * refused (wrong key, tampered body, another subject, replay, stale or future timestamp); the sender memory is
 * bounded; refusals are logged at a bounded rate; weak tokens are refused with what to do.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  checkToken,
  DEFAULT_MAX_SKEW_MS,
  deriveGenerationKey,
  deriveJobKey,
  InsecureTokenError,
  MessageAuthError,
  MessageOpener,
  MessageSealer,
  RefusalLog,
} from '../../src/control/message-auth.js';

const TOKEN = 'a-test-token-0123456789abcdef';
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe('message sealing', () => {
  test('keys are bound to the job, and generation keys to incarnation and generation', () => {
    const k = deriveJobKey(TOKEN, 'job');
    assert.equal(k.length, 32);
    assert.deepEqual(deriveJobKey(TOKEN, 'job'), k);
    assert.notDeepEqual(deriveJobKey(TOKEN, 'job2'), k);
    assert.notDeepEqual(deriveJobKey(`${TOKEN}x`, 'job'), k);
    const g = deriveGenerationKey(k, 'job', 'inc', 3);
    assert.notDeepEqual(deriveGenerationKey(k, 'job', 'inc', 4), g);
    assert.notDeepEqual(deriveGenerationKey(k, 'job', 'inc2', 3), g);
  });

  test('opens what the key sealed; refuses a wrong key, a tampered body, another subject and a replay', () => {
    const clock = { t: 1_000_000 };
    const key = deriveJobKey(TOKEN, 'job');
    const sealer = new MessageSealer(key, 'worker:w0', () => clock.t);
    const opener = new MessageOpener(key, DEFAULT_MAX_SKEW_MS, () => clock.t);
    const m1 = sealer.seal('s.report', { type: 'ready', n: 1 });
    const m2 = sealer.seal('s.report', { type: 'ready', n: 2 });
    // The body is readable (not confidential), the token is nowhere in it.
    assert.match(text(m1), /"type\\":\\"ready\\"/);
    assert.doesNotMatch(text(m1), new RegExp(TOKEN));
    const refused = (f: () => unknown, re: RegExp) =>
      assert.throws(f, (e: Error) => e instanceof MessageAuthError && re.test(e.message));
    refused(
      () => new MessageOpener(deriveJobKey('another-token-0123456789', 'job')).open('s.report', m1),
      /bad MAC/,
    );
    refused(() => opener.open('s.ctl', m1), /bad MAC/);
    const env = JSON.parse(text(m1));
    env.b = env.b.replace('"n":1', '"n":9');
    refused(() => opener.open('s.report', new TextEncoder().encode(JSON.stringify(env))), /bad MAC/);
    refused(
      () => opener.open('s.report', new TextEncoder().encode('{"type":"ready"}')),
      /not a sealed message/,
    );
    assert.deepEqual(JSON.parse(text(opener.open('s.report', m2).body)), { type: 'ready', n: 2 });
    // m1 is older than m2 from the same sender, and m2 itself was seen: both replays.
    refused(() => opener.open('s.report', m1), /replayed/);
    refused(() => opener.open('s.report', m2), /replayed/);
    // Another sender (the heartbeat thread) has its own sequence space.
    const hb = new MessageSealer(key, 'worker:w0/heartbeat', () => clock.t);
    assert.equal(opener.open('s.heartbeat', hb.seal('s.heartbeat', { type: 'heartbeat' })).seq, 1);
  });

  test('a timestamp beyond the window is refused both ways; silent senders are forgotten', () => {
    const clock = { t: 5_000_000 };
    const key = deriveJobKey(TOKEN, 'job');
    const opener = new MessageOpener(key, 1000, () => clock.t);
    const early = new MessageSealer(key, 'a', () => clock.t - 1001);
    const late = new MessageSealer(key, 'b', () => clock.t + 1001);
    assert.throws(() => opener.open('s', early.seal('s', {})), /timestamp -1 s away/);
    assert.throws(() => opener.open('s', late.seal('s', {})), /timestamp 1 s away/);
    const ok = new MessageSealer(key, 'c', () => clock.t);
    const old = ok.seal('s', { n: 1 });
    opener.open('s', old);
    const remembered = (opener as unknown as { last: Map<string, unknown> }).last;
    assert.equal(remembered.size, 1);
    clock.t += 3000;
    opener.open('s', new MessageSealer(key, 'd', () => clock.t).seal('s', {}));
    assert.equal(remembered.size, 1, 'the silent sender was forgotten');
    // Forgetting it is safe: its old message is refused by its timestamp.
    assert.throws(() => opener.open('s', old), /timestamp/);
  });

  test('refusals are logged at a bounded rate, then counted', () => {
    const clock = { t: 0 };
    const lines: string[] = [];
    const log = new RefusalLog(
      (l) => lines.push(l),
      3,
      10_000,
      () => clock.t,
    );
    for (let i = 0; i < 1000; i++) log.refused('a message', 'bad MAC');
    assert.equal(lines.length, 3);
    clock.t = 10_000;
    log.refused('a message', 'bad MAC');
    assert.equal(lines.length, 5);
    assert.equal(lines[3], 'refused 997 more unauthenticated message(s) (1000 in all)');
    assert.equal(log.total, 1001);
  });

  test('an empty, short or placeholder token is refused, saying what to do', () => {
    for (const [t, re] of [
      ['', /is empty/],
      ['short', /has 5 characters, fewer than the 16 required/],
      ['change-me-before-applying', /is the placeholder 'change-me-before-applying'/],
      ['CHANGEME', /is the placeholder/],
    ] as const) {
      assert.throws(
        () => checkToken(t),
        (e: Error) =>
          e instanceof InsecureTokenError && re.test(e.message) && /openssl rand -hex 32/.test(e.message),
        t,
      );
    }
    assert.equal(checkToken(TOKEN), TOKEN);
  });
});
