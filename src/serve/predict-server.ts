/**
 * The inference server's HTTP JSON API (node:http):
 *   POST /v1/predict   {"task": T, "input": ...}            -> {"task", "output", "version"}
 *                      {"instances": [{"task", "input"}...]} -> {"predictions": [{"task", "output"}...], "version"}
 *   GET  /v1/version   the served version, its stage, method and tasks
 *   GET  /healthz      200 while the process runs
 *   GET  /readyz       200 once a version is loaded, else 503
 *   GET  /metrics      Prometheus text format
 * A row's "input" is the source text or the task's own fields, as for `promptmesh predict` (predict-rows.ts); an
 * "id" is echoed back. Rows of concurrent requests are batched into one forward pass (dynamic-batcher.ts). Every
 * bad request is answered 4xx with {"error": {"code", "reason"}} and never reaches the model: 400 malformed JSON or
 * row, 404 unknown path, 405 wrong method, 413 body, input or batch too large, 415 not JSON, 422 a task the version
 * does not serve; 503 while no version is loaded.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type ParsedRow,
  PredictRowError,
  parsePredictRow,
  type ServedVersion,
  UnservedTaskError,
} from '../infer/index.js';
import { DEFAULT_BATCHER_OPTIONS, DynamicBatcher, type DynamicBatcherOptions } from './dynamic-batcher.js';
import type { ServeTelemetry } from './serve-telemetry.js';

export interface PredictServerOptions {
  host: string;
  /** 0 = any free port. */
  port: number;
  batcher: DynamicBatcherOptions;
  /** Largest request body in bytes. */
  maxBodyBytes: number;
  /** Longest source text of one row, in characters (sources are truncated to maxSourceLength tokens anyway). */
  maxInputChars: number;
  /** Most rows in one batch-form request (at most the batcher's maxBatch, so a request is one pass). */
  maxRowsPerRequest: number;
}

export const DEFAULT_SERVER_OPTIONS: PredictServerOptions = Object.freeze({
  host: '127.0.0.1',
  port: 8080,
  batcher: DEFAULT_BATCHER_OPTIONS,
  maxBodyBytes: 1 << 20,
  maxInputChars: 20_000,
  maxRowsPerRequest: DEFAULT_BATCHER_OPTIONS.maxBatch,
});

export interface PredictServer {
  host: string;
  port: number;
  url: string;
  close(): Promise<void>;
}

/** Where the server finds the version to run; undefined while none is loaded. */
export type VersionSource = () => ServedVersion | undefined;

class HttpError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

type RowResult = { output: string } | { error: string };

export async function startPredictServer(
  current: VersionSource,
  telemetry: ServeTelemetry,
  opts: PredictServerOptions = DEFAULT_SERVER_OPTIONS,
): Promise<PredictServer> {
  const maxRows = Math.min(opts.maxRowsPerRequest, opts.batcher.maxBatch);
  const batcher = new DynamicBatcher<ParsedRow, RowResult>(
    (rows) => runPass(current(), rows, telemetry),
    opts.batcher,
  );

  const server = http.createServer((req, res) => {
    const started = performance.now();
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = ['/v1/predict', '/v1/version', '/healthz', '/readyz', '/metrics'].includes(path)
      ? path
      : 'other';
    res.on('finish', () => telemetry.request(route, res.statusCode, (performance.now() - started) / 1000));
    handle(req, res, path).catch((err: unknown) => {
      const e =
        err instanceof HttpError ? err : new HttpError(500, `internal error: ${(err as Error).message}`);
      sendJson(res, e.code, { error: { code: e.code, reason: e.message } });
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void> {
    const get = req.method === 'GET' || req.method === 'HEAD';
    if (path === '/healthz') {
      if (!get) throw methodNotAllowed(req, 'GET');
      return sendJson(res, 200, { status: 'ok' });
    }
    if (path === '/readyz') {
      if (!get) throw methodNotAllowed(req, 'GET');
      const v = current();
      return v
        ? sendJson(res, 200, { status: 'ready', version: v.manifest.id })
        : sendJson(res, 503, { status: 'loading' });
    }
    if (path === '/metrics') {
      if (!get) throw methodNotAllowed(req, 'GET');
      const body = await telemetry.registry.metrics();
      res.writeHead(200, { 'content-type': telemetry.registry.contentType }).end(body);
      return;
    }
    if (path === '/v1/version') {
      if (!get) throw methodNotAllowed(req, 'GET');
      const v = ready();
      return sendJson(res, 200, {
        version: v.manifest.id,
        job: v.manifest.job,
        step: v.manifest.step,
        stage: v.stage.name,
        method: v.manifest.method,
        tasks: v.engine.options.tasks,
        mode: v.engine.options.mode,
      });
    }
    if (path !== '/v1/predict')
      throw new HttpError(
        404,
        `no route ${path}; POST /v1/predict, GET /v1/version, /healthz, /readyz, /metrics`,
      );
    if (req.method !== 'POST') throw methodNotAllowed(req, 'POST');
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      req.resume();
      throw new HttpError(415, `content-type must be application/json, got '${type || '(none)'}'`);
    }
    const body = await readBody(req, opts.maxBodyBytes);
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (e) {
      throw new HttpError(400, `the body is not valid JSON (${(e as Error).message})`);
    }
    const v = ready();
    const batch = isObject(value) && Object.hasOwn(value, 'instances');
    let raw: unknown[];
    if (batch) {
      const inst = (value as Record<string, unknown>).instances;
      if (!Array.isArray(inst) || inst.length === 0)
        throw new HttpError(400, '"instances" must be a non-empty list of {"task", "input"} objects');
      if (inst.length > maxRows)
        throw new HttpError(413, `${inst.length} instances in one request; at most ${maxRows}`);
      raw = inst;
    } else raw = [value];
    const rows = raw.map((r, i) => checkRow(v, r, batch ? `instances[${i}]` : 'body'));
    const results = await batcher.submit(rows);
    const served = current() ?? v;
    const out = results.map((r, i) => {
      if ('error' in r) throw new HttpError(422, r.error);
      const row = rows[i]!;
      return { ...(row.id !== undefined ? { id: row.id } : {}), task: row.task, output: r.output };
    });
    sendJson(
      res,
      200,
      batch ? { predictions: out, version: served.manifest.id } : { ...out[0], version: served.manifest.id },
    );
  }

  function ready(): ServedVersion {
    const v = current();
    if (!v) throw new HttpError(503, 'no version loaded yet');
    return v;
  }

  function checkRow(v: ServedVersion, value: unknown, where: string): ParsedRow {
    let row: ParsedRow;
    try {
      row = parsePredictRow(value, where);
    } catch (e) {
      if (e instanceof PredictRowError) throw new HttpError(400, e.message);
      throw e;
    }
    try {
      row = { ...row, task: v.engine.checkTask(row.task) };
    } catch (e) {
      if (e instanceof UnservedTaskError) throw new HttpError(422, `${where}: ${e.message}`);
      throw e;
    }
    if (row.source.length > opts.maxInputChars)
      throw new HttpError(
        413,
        `${where}: input of ${row.source.length} characters; at most ${opts.maxInputChars}`,
      );
    return row;
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    host: opts.host,
    port,
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** One forward pass; rows whose task the (possibly just switched) version does not serve get an error. */
function runPass(
  v: ServedVersion | undefined,
  rows: readonly ParsedRow[],
  telemetry: ServeTelemetry,
): RowResult[] {
  if (!v) return rows.map(() => ({ error: 'no version loaded' }));
  const ok: number[] = [];
  const out: RowResult[] = rows.map((r, i) => {
    try {
      v.engine.checkTask(r.task);
      ok.push(i);
      return { output: '' };
    } catch (e) {
      return { error: (e as Error).message };
    }
  });
  if (ok.length > 0) {
    const preds = v.engine.predictBatch(ok.map((i) => rows[i]!));
    ok.forEach((i, k) => {
      out[i] = { output: preds[k]! };
    });
    telemetry.batch(ok.map((i) => rows[i]!.task));
  }
  return out;
}

function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limit) {
      req.resume();
      reject(new HttpError(413, `body of ${declared} bytes; at most ${limit}`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > limit) {
        failed = true;
        reject(new HttpError(413, `body over ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (e) => {
      if (!failed) reject(new HttpError(400, `reading the body failed: ${e.message}`));
    });
  });
}

function methodNotAllowed(req: http.IncomingMessage, allow: string): HttpError {
  req.resume();
  return new HttpError(405, `${req.method} is not allowed here; use ${allow}`);
}

function sendJson(res: http.ServerResponse, code: number, value: unknown): void {
  if (res.headersSent) return;
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(code, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
