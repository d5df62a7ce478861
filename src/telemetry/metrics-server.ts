import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** A probe's answer: 200 with the detail when ok, 503 with it otherwise. */
export interface ProbeResult {
  ok: boolean;
  detail: string;
}

export interface MetricsServerOptions {
  registry: Registry;
  /** Interface to bind (127.0.0.1 keeps metrics off the network; 0.0.0.0 in a pod). */
  host: string;
  /** 0 = any free port. */
  port: number;
  /** /healthz: is the process alive and able to recover on its own (else restart it). */
  live: () => ProbeResult;
  /** /readyz: is it doing its job now (joined the job; coordinating). */
  ready: () => ProbeResult;
}

export interface MetricsServer {
  host: string;
  port: number;
  /** http://host:port/metrics */
  url: string;
  close(): Promise<void>;
}

/** The metrics port cannot be bound (in use, no permission, no such interface). */
export class MetricsServerError extends Error {
  override name = 'MetricsServerError';
}

/** Serves /metrics (Prometheus text format), /healthz and /readyz until closed. */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url === '/metrics') {
      opts.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': opts.registry.contentType });
          res.end(req.method === 'HEAD' ? undefined : body);
        },
        (err: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(`collecting metrics failed: ${(err as Error).message}\n`);
        },
      );
      return;
    }
    if (url === '/healthz' || url === '/readyz') {
      let r: ProbeResult;
      try {
        r = url === '/healthz' ? opts.live() : opts.ready();
      } catch (err) {
        r = { ok: false, detail: `probe failed: ${(err as Error).message}` };
      }
      res.writeHead(r.ok ? 200 : 503, {
        'content-type': 'text/plain; charset=utf-8',
        'cache-control': 'no-store',
      });
      res.end(`${r.ok ? 'ok' : 'not ok'}: ${r.detail}\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('not found: try /metrics, /healthz or /readyz\n');
  });
  // A scrape must never keep a stopping process alive.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const hint =
        err.code === 'EADDRINUSE'
          ? 'another process holds it: pick another --metrics-port, or 0 for any free port'
          : err.code === 'EADDRNOTAVAIL'
            ? 'no such local address: use 127.0.0.1, 0.0.0.0 or an address of this host for --metrics-host'
            : 'check --metrics-host and --metrics-port';
      reject(
        new MetricsServerError(
          `cannot serve metrics on ${opts.host}:${opts.port} (${err.code ?? err.message}): ${hint}`,
          { cause: err },
        ),
      );
    });
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const shown = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    host: opts.host,
    port,
    url: `http://${shown}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
