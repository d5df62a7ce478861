/**
 * Security basics of the runtime (item 6): a wrong join token never joins and the token never travels; job id and
 * protocol version are checked with a reason; a placeholder or short token is refused at start; NATS user/password
 * authentication; up's nats-server refuses a client without its token; mutual TLS between workers with openssl-made certificates; `up` listens on
 * loopback only. Real processes and a real nats-server throughout.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tls from 'node:tls';
import { connect } from 'nats';
import { PROTOCOL_VERSION, subjects, UNAUTHENTICATED_JOIN } from '../../src/control/protocol.js';
import { type NatsServerHandle, natsSkipReason, startNatsServer } from '../helpers/nats.js';
import {
  type CliProcess,
  expectExit,
  killAll,
  makeRuntimeFixture,
  openBank,
  type RuntimeFixture,
  spawnCli,
  startCoordinator,
  startWorker,
  testSealer,
} from '../helpers/runtime-fixture.js';
import { SPM_MISSING_MESSAGE } from '../helpers/spm-fixture.js';

function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A CA and one certificate per name it signs (EC P-256, SAN localhost + 127.0.0.1, server and client auth). */
function makeCerts(dir: string, names: string[]): Record<string, { cert: string; key: string }> {
  const ssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore', cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=promptmesh-test-ca',
  ]);
  fs.writeFileSync(
    path.join(dir, 'peer.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  const out: Record<string, { cert: string; key: string }> = {};
  for (const n of names) {
    ssl(['req', ...ec, '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', '/CN=localhost']);
    ssl([
      'x509',
      '-req',
      '-in',
      `${n}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${n}.pem`,
      '-days',
      '1',
      '-extfile',
      'peer.ext',
    ]);
    out[n] = { cert: path.join(dir, `${n}.pem`), key: path.join(dir, `${n}.key`) };
  }
  return out;
}

/** Listening TCP sockets (address:port) of the given processes, from /proc (Linux). */
function listeners(pids: number[]): string[] {
  const inodes = new Set<string>();
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // exited meanwhile
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]!);
      } catch {
        // closed meanwhile
      }
    }
  }
  const out: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A' || !inodes.has(f[9]!)) continue; // 0A = LISTEN
      const [hex, port] = f[1]!.split(':') as [string, string];
      const addr =
        hex.length === 8
          ? (hex.match(/../g) ?? [])
              .reverse()
              .map((b) => Number.parseInt(b, 16))
              .join('.')
          : hex === '00000000000000000000000001000000'
            ? '::1'
            : hex === '0'.repeat(32)
              ? '::'
              : `v6:${hex}`;
      out.push(`${addr}:${Number.parseInt(port, 16)}`);
    }
  }
  return out;
}

/** The process and all its descendants (Linux /proc). */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [p, pp] of parent) if (pp === out[i]) out.push(p);
  return out;
}

describe('runtime security basics', { skip: natsSkipReason() }, () => {
  let fx: RuntimeFixture | undefined;
  let nats: NatsServerHandle;
  const procs: CliProcess[] = [];
  const track = <T extends CliProcess>(p: T): T => {
    procs.push(p);
    return p;
  };

  before(async () => {
    fx = await makeRuntimeFixture({ jobId: 'sec', steps: [4, 0] });
    if (!fx) return;
    nats = await startNatsServer();
  });
  after(async () => {
    await killAll(procs);
    await nats?.stop();
    fx?.cleanup();
  });

  test('a wrong join token never joins (the token is never sent); job id and protocol are refused with the reason', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const right = 'right-token-0123456789abcdef';
    const a = { natsUrl: nats.url, jobFile: fx.jobFile, bankDir: `${fx.bankDir}-refuse` };
    const coord = track(startCoordinator({ ...a, workers: 1, token: right }));
    // Everything on the job's subjects, as any NATS client can read it.
    const snoop = await connect({ servers: nats.url });
    const seen: string[] = [];
    snoop.subscribe('promptmesh.sec.>', { callback: (_e, m) => seen.push(new TextDecoder().decode(m.data)) });
    await coord.waitFor(/metrics on|resuming|worker/, 30_000).catch(() => {});
    // A real worker process with the wrong token is never admitted: the coordinator's unsealed refusal is only a
    // hint (anyone could forge it), so the worker keeps asking until --join-timeout, then exits 4 with the hint.
    const bad = track(
      startWorker({
        ...a,
        id: 'intruder',
        token: 'wrong-token-0123456789abcdef',
        extra: ['--join-timeout', '3'],
      }),
    );
    assert.equal(await expectExit(bad, 60_000), 4, bad.output());
    assert.match(
      bad.output(),
      /does not hold the join token the coordinator was started with; check --token/,
    );
    assert.match(coord.output(), /refused a message on promptmesh\.sec\.join: bad MAC/);
    // Job id and protocol: a request sealed with the right key (a member's) gets a sealed refusal with the reason;
    // an unsealed one, a generic refusal that names neither generation nor ranks.
    const nc = await connect({ servers: nats.url });
    try {
      const sealer = testSealer('sec', right);
      const ask = async (over: Record<string, unknown>, sealed = true) => {
        const req = {
          type: 'join',
          workerId: 'x',
          jobId: 'sec',
          protocol: PROTOCOL_VERSION,
          address: '127.0.0.1:1',
          ...over,
        };
        const subject = subjects('sec').join;
        const body = sealed ? sealer.seal(subject, req) : new TextEncoder().encode(JSON.stringify(req));
        const res = await nc.request(subject, body, { timeout: 5000 });
        const text = new TextDecoder().decode(res.data);
        return JSON.parse(sealed ? JSON.parse(text).b : text) as { type: string; reason?: string };
      };
      assert.deepEqual(await ask({ jobId: 'other' }), {
        type: 'refused',
        reason: "wrong job 'other': this coordinator runs 'sec'",
      });
      const proto = await ask({ protocol: PROTOCOL_VERSION + 1 });
      assert.equal(proto.type, 'refused');
      assert.match(proto.reason!, new RegExp(`protocol ${PROTOCOL_VERSION + 1} is not supported .*upgrade`));
      assert.deepEqual(await ask({ token: right }, false), { type: 'refused', reason: UNAUTHENTICATED_JOIN });
    } finally {
      await nc.close();
    }
    // The refused ones never became members: a good worker then runs the job to the end.
    const good = track(startWorker({ ...a, id: 'w0', token: right }));
    assert.equal(await expectExit(coord), 0, coord.output());
    assert.equal(await expectExit(good, 20_000), 0, good.output());
    assert.doesNotMatch(coord.output(), /worker (intruder|x) joined/);
    await snoop.drain();
    // The good worker's own join went over NATS too, and no message ever carried the token.
    const bodyType = (m: string): unknown => {
      try {
        return JSON.parse(JSON.parse(m).b).type;
      } catch {
        return undefined;
      }
    };
    assert.ok(seen.filter((m) => bodyType(m) === 'join').length >= 2, 'saw the sealed join requests');
    assert.equal(seen.filter((m) => m.includes(right)).length, 1, 'only the hand-made unsealed request');
  });

  test('a placeholder, short or empty join token is refused at start, saying what to do', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const a = { natsUrl: nats.url, jobFile: fx.jobFile, bankDir: `${fx.bankDir}-placeholder` };
    const cases: [string, RegExp][] = [
      ['change-me-before-applying', /is the placeholder 'change-me-before-applying', not a secret/],
      ['short', /has 5 characters, fewer than the 16 required/],
    ];
    for (const [token, why] of cases) {
      for (const p of [
        track(startCoordinator({ ...a, workers: 1, token, name: `coordinator-${token}` })),
        track(startWorker({ ...a, id: `w-${token}`, token })),
      ]) {
        assert.equal(await expectExit(p, 30_000), 2, p.output());
        assert.match(p.output(), why);
        assert.match(p.output(), /openssl rand -hex 32/);
      }
    }
    const env = track(
      spawnCli('worker-env', ['worker', '--nats', nats.url, '--config', fx.jobFile, '--bank', a.bankDir], {
        PROMPTMESH_JOIN_TOKEN: 'change-me-before-applying',
      }),
    );
    assert.equal(await expectExit(env, 30_000), 2, env.output());
    assert.match(env.output(), /the join token \(PROMPTMESH_JOIN_TOKEN\) is the placeholder/);
  });

  test('NATS user/password: the job runs with credentials; without them a process cannot connect', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const authNats = await startNatsServer({ args: ['--user', 'pm', '--pass', 's3cret'] });
    try {
      const a = { natsUrl: authNats.url, jobFile: fx.jobFile, bankDir: `${fx.bankDir}-auth` };
      const anon = track(startWorker({ ...a, id: 'anon' }));
      assert.notEqual(await expectExit(anon, 60_000), 0);
      assert.match(anon.output(), /cannot connect to NATS .*(Authorization|AUTHORIZATION)/i);
      const creds = { ...a, extra: ['--nats-user', 'pm', '--nats-password', 's3cret'] };
      const coord = track(startCoordinator({ ...creds, workers: 2 }));
      const ws = [track(startWorker({ ...creds, id: 'w0' })), track(startWorker({ ...creds, id: 'w1' }))];
      assert.equal(await expectExit(coord), 0, coord.output());
      for (const w of ws) assert.equal(await expectExit(w, 20_000), 0, w.output());
      assert.equal((await openBank(a.bankDir).get('sec@head')).step, 4);
    } finally {
      await authNats.stop();
    }
  });

  test('mutual TLS between workers with openssl-made certificates', {
    skip: !haveOpenssl() && 'openssl not installed',
  }, async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const certDir = fs.mkdtempSync(path.join(fx.dir, 'certs-'));
    const certs = makeCerts(certDir, ['w0', 'w1']);
    const ca = path.join(certDir, 'ca.pem');
    const jobFile = fx.writeJob('tls.json', (j) => {
      j.stages[0].train.steps = 40;
      return j;
    });
    const a = { natsUrl: nats.url, jobFile, bankDir: `${fx.bankDir}-tls` };
    const coord = track(startCoordinator({ ...a, workers: 2 }));
    const ws = (['w0', 'w1'] as const).map((id) =>
      track(
        startWorker({
          ...a,
          id,
          extra: ['--tls-cert', certs[id]!.cert, '--tls-key', certs[id]!.key, '--tls-ca', ca],
        }),
      ),
    );
    const joined = await coord.waitFor(/worker w0 joined from 127\.0\.0\.1:(\d+)/);
    await coord.waitFor(/generation 1 /);
    // The collective listener speaks TLS with a certificate our CA signed, and asks the client for one.
    const peer = await new Promise<{ authorized: boolean; cn: unknown; askedForCert: boolean }>(
      (resolve, reject) => {
        const s = tls.connect({
          host: '127.0.0.1',
          port: Number(joined[1]),
          ca: fs.readFileSync(ca),
          cert: fs.readFileSync(certs.w1!.cert),
          key: fs.readFileSync(certs.w1!.key),
          servername: 'localhost',
          ALPNProtocols: ['h2'],
        });
        s.once('secureConnect', () => {
          resolve({
            authorized: s.authorized,
            cn: s.getPeerCertificate().subject?.CN,
            askedForCert: s.getCertificate() !== null,
          });
          s.destroy();
        });
        s.once('error', reject);
      },
    );
    assert.deepEqual(peer, { authorized: true, cn: 'localhost', askedForCert: true });
    assert.equal(await expectExit(coord), 0, coord.output());
    for (const w of ws) assert.equal(await expectExit(w, 20_000), 0, w.output());
    assert.equal((await openBank(a.bankDir).get('sec@head')).step, 40);
    // Half a TLS configuration is a usage error, not a silent plaintext fallback.
    const half = track(startWorker({ ...a, id: 'half', extra: ['--tls-cert', certs.w0!.cert] }));
    assert.equal(await expectExit(half, 30_000), 2, half.output());
    assert.match(half.output(), /TLS needs --tls-cert, --tls-key and --tls-ca together/);
  });

  test('up binds only 127.0.0.1 (nats-server, collective and metrics listeners) and its nats-server needs a token', async (t) => {
    if (!fx) return t.skip(SPM_MISSING_MESSAGE);
    const job = fx.writeJob('long.json', (j) => {
      j.stages[0].train.steps = 400;
      return j;
    });
    const up = track(
      spawnCli(
        'up',
        ['up', '--workers', '2', '--config', job, '--bank', `${fx.bankDir}-up`, '--backend', 'wasm'],
        {
          NATS_URL: '',
        },
      ),
    );
    const natsLine = await up.waitFor(/nats-server \(pid \d+\) with JetStream on (nats:\/\/[\d.:]+)/, 60_000);
    await up.waitFor(/generation 1 .*: .* from step 0/, 90_000);
    // up's nats-server requires the token it handed to its children: a client without it is refused.
    await assert.rejects(connect({ servers: natsLine[1]!, reconnect: false }), /authorization/i);
    await assert.rejects(
      connect({ servers: natsLine[1]!, token: 'not-the-token-0123456789', reconnect: false }),
      /authorization/i,
    );
    const pids = descendants(up.child.pid!);
    const addrs = listeners(pids);
    t.diagnostic(`${pids.length} processes listening on ${addrs.join(', ')}`);
    // nats-server (client port), coordinator metrics, two workers' collective and metrics ports at least.
    assert.ok(addrs.length >= 6, addrs.join(', '));
    for (const addr of addrs) assert.match(addr, /^(127\.0\.0\.1|::1):\d+$/, `listening on ${addr}`);
    up.kill('SIGINT');
    assert.equal(await expectExit(up, 30_000), 130, up.output());
  });
});
