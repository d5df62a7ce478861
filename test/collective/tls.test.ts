/**
 * Mutual TLS between ranks with certificates made by openssl for this test: a shared CA signs one certificate per
 * role; a peer whose certificate another CA signed cannot join the mesh.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  Collective,
  CollectiveConnectError,
  GrpcTransport,
  type TlsFiles,
} from '../../src/collective/index.js';

function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function makeCa(dir: string, name: string): void {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      path.join(dir, `${name}.key`),
      '-out',
      path.join(dir, `${name}.pem`),
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
    ],
    { stdio: 'ignore' },
  );
}

function makeCert(dir: string, ca: string, name: string): TlsFiles {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(
    ext,
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  execFileSync(
    'openssl',
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      csr,
      '-subj',
      '/CN=localhost',
    ],
    { stdio: 'ignore' },
  );
  execFileSync(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      path.join(dir, `${ca}.pem`),
      '-CAkey',
      path.join(dir, `${ca}.key`),
      '-CAcreateserial',
      '-out',
      cert,
      '-days',
      '1',
      '-extfile',
      ext,
    ],
    { stdio: 'ignore' },
  );
  return {
    certFile: cert,
    keyFile: key,
    caFile: path.join(dir, `${ca}.pem`),
    requireClientCert: true,
    serverNameOverride: 'localhost',
  };
}

describe('gRPC transport with mutual TLS', {
  skip: haveOpenssl() ? false : 'openssl is not installed',
}, () => {
  let dir = '';
  let good: TlsFiles;
  let rogue: TlsFiles;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
    makeCa(dir, 'ca');
    makeCa(dir, 'other-ca');
    good = makeCert(dir, 'ca', 'worker');
    // Signed by another CA, but trusting ours: it can reach the peers, they must refuse it.
    rogue = { ...makeCert(dir, 'other-ca', 'rogue'), caFile: path.join(dir, 'ca.pem') };
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('three ranks all-reduce over mTLS', async () => {
    const ts = await Promise.all([0, 1, 2].map(() => GrpcTransport.listen({ tls: good })));
    const peers = ts.map((t, rank) => ({ rank, address: t.address }));
    await Promise.all(
      ts.map((t, rank) => t.connect(peers, { jobId: 'tls', generation: 1, rank, timeoutMs: 10_000 })),
    );
    const comms = ts.map((t) => new Collective(t));
    try {
      const outs = await Promise.all(
        comms.map((c, r) => c.allReduce(Float32Array.of(r, 2 * r, 0.5), { step: 1 })),
      );
      for (const o of outs) assert.deepEqual(Array.from(o), [3, 6, 1.5]);
    } finally {
      await Promise.all(comms.map((c) => c.close()));
    }
  });

  it('a peer whose certificate another CA signed cannot join', async () => {
    const a = await GrpcTransport.listen({ tls: good });
    const b = await GrpcTransport.listen({ tls: rogue });
    const peers = [
      { rank: 0, address: a.address },
      { rank: 1, address: b.address },
    ];
    const results = await Promise.allSettled([
      a.connect(peers, { jobId: 'tls', generation: 1, rank: 0, timeoutMs: 3000 }),
      b.connect(peers, { jobId: 'tls', generation: 1, rank: 1, timeoutMs: 3000 }),
    ]);
    await Promise.all([a.close(), b.close()]);
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      assert.ok((r as PromiseRejectedResult).reason instanceof CollectiveConnectError);
    }
  });
});
