/**
 * Starts a local `nats-server` (JetStream on) as a child process: used by `promptmesh up` when `NATS_URL` is
 * unset, and by every integration test that needs a real server.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const NATS_SERVER_INSTALL_HINT =
  'nats-server not found on PATH; install it with `apt-get install nats-server` (Debian/Ubuntu) or from the NATS releases (https://github.com/nats-io/nats-server/releases)';

/** `nats-server` is not installed (or not on PATH). */
export class NatsServerNotFoundError extends Error {
  override name = 'NatsServerNotFoundError';
  constructor(binary: string, options?: { cause?: unknown }) {
    super(
      binary === 'nats-server'
        ? NATS_SERVER_INSTALL_HINT
        : `${binary}: not found. ${NATS_SERVER_INSTALL_HINT}`,
      options,
    );
  }
}

/** The server started but exited, or did not become ready in time. */
export class NatsServerStartError extends Error {
  override name = 'NatsServerStartError';
}

export interface StartNatsServerOptions {
  /** Client port; 0 (the default) lets the server pick a free one. */
  port?: number;
  /** JetStream store directory. Default: a fresh temp directory, removed on stop. */
  storeDir?: string;
  /** Enable JetStream (default true). */
  jetstream?: boolean;
  /** Extra command-line arguments, e.g. `['--user', 'u', '--pass', 'p']`. */
  args?: string[];
  /** Bind address. Only loopback: a test or local launcher must never listen on all interfaces. */
  host?: '127.0.0.1';
  /** Binary to run (default `nats-server` from PATH, or `$NATS_SERVER_BIN`). */
  binary?: string;
  /** How long to wait for the server to accept connections (default 15 s). */
  readyTimeoutMs?: number;
  /**
   * Require this token from every client (nats-server `authorization { token }`). Written to a config file only
   * the owner can read (never on the command line, where `ps` would show it), removed on stop.
   */
  authToken?: string;
}

export interface NatsServerHandle {
  /** `nats://127.0.0.1:PORT` */
  url: string;
  port: number;
  storeDir: string;
  /** The current server process (replaced by `restart`). */
  process: ChildProcess;
  /** The server's log so far (stderr), for diagnosing test failures. */
  log(): string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and removes the temp store unless one was given. */
  stop(): Promise<void>;
  /**
   * Stops the server and starts it again on the same port with the same store, for reconnect tests.
   * `hard: true` kills it with SIGKILL instead of a clean shutdown; `downMs` keeps it down that long.
   */
  restart(opts?: { hard?: boolean; downMs?: number }): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test that throws before calling stop() must not leave an orphaned server holding a port.
  process.on('exit', () => {
    for (const p of live) p.kill('SIGKILL');
  });
}

/** The path of the nats-server binary, or null when it is missing. */
export function findNatsServer(binary = process.env.NATS_SERVER_BIN ?? 'nats-server'): string | null {
  if (binary.includes('/')) return fs.existsSync(binary) ? binary : null;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, binary);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not in this directory
    }
  }
  return null;
}

function tcpReachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

const LISTEN_RE = /Listening for client connections on [^\s]*:(\d+)/;

interface Launched {
  proc: ChildProcess;
  port: number;
}

export async function startNatsServer(opts: StartNatsServerOptions = {}): Promise<NatsServerHandle> {
  const host = opts.host ?? '127.0.0.1';
  const requested = opts.binary ?? process.env.NATS_SERVER_BIN ?? 'nats-server';
  const binary = findNatsServer(requested);
  if (!binary) throw new NatsServerNotFoundError(requested);
  const ownStore = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'pm-nats-'));
  fs.mkdirSync(storeDir, { recursive: true });
  const jetstream = opts.jetstream ?? true;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
  let logText = '';
  installExitHook();
  let authDir: string | undefined;
  const authArgs: string[] = [];
  if (opts.authToken !== undefined) {
    if (!/^[A-Za-z0-9_-]{16,}$/.test(opts.authToken)) {
      throw new NatsServerStartError('authToken must be at least 16 letters, digits, - or _');
    }
    authDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-nats-auth-'));
    const conf = path.join(authDir, 'auth.conf');
    fs.writeFileSync(conf, `authorization {\n  token: "${opts.authToken}"\n}\n`, { mode: 0o600 });
    authArgs.push('-c', conf);
  }
  const removeAuth = () => {
    if (authDir) fs.rmSync(authDir, { recursive: true, force: true });
  };

  const launch = (port: number): Promise<Launched> =>
    new Promise<Launched>((resolve, reject) => {
      // `-p -1` makes the server choose a free port itself, which avoids the bind-then-release race of
      // probing for a free port first; the chosen port is read from its log.
      const args = [...authArgs, '-a', host, '-p', port === 0 ? '-1' : String(port)];
      if (jetstream) args.push('-js', '-sd', storeDir);
      args.push(...(opts.args ?? []));
      const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      live.add(proc);
      let settled = false;
      let seenPort = 0;
      let startLog = '';
      const timer = setTimeout(() => {
        fail(
          new NatsServerStartError(
            `nats-server did not become ready within ${readyTimeoutMs} ms.\n${tail(startLog)}`,
          ),
        );
      }, readyTimeoutMs);
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        proc.kill('SIGKILL');
        reject(e);
      };
      const onData = (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        logText += text;
        startLog += text;
        if (settled) return;
        const m = LISTEN_RE.exec(startLog);
        if (m && !seenPort) seenPort = Number(m[1]);
        if (seenPort && startLog.includes('Server is ready')) {
          // The log line is written just before Accept starts; confirm with a real connect.
          void waitTcp(host, seenPort, 50).then((ok) => {
            if (settled) return;
            if (!ok)
              return fail(
                new NatsServerStartError(`nats-server said ready but port ${seenPort} refuses connections`),
              );
            settled = true;
            clearTimeout(timer);
            resolve({ proc, port: seenPort });
          });
        }
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
      proc.once('error', (e: NodeJS.ErrnoException) => {
        live.delete(proc);
        fail(e.code === 'ENOENT' ? new NatsServerNotFoundError(requested, { cause: e }) : e);
      });
      proc.once('exit', (code, signal) => {
        live.delete(proc);
        fail(
          new NatsServerStartError(
            `nats-server exited during start-up (code ${code}, signal ${signal}); args: ${args.join(' ')}\n${tail(startLog)}`,
          ),
        );
      });
    });

  let current: Launched;
  try {
    current = await launch(opts.port ?? 0);
  } catch (e) {
    if (ownStore) fs.rmSync(storeDir, { recursive: true, force: true });
    removeAuth();
    throw e;
  }
  const port = current.port;
  let stopped = false;

  const stopProcess = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = current.proc;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill(signal);
    const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(killer);
    live.delete(proc);
  };

  const handle: NatsServerHandle = {
    url: `nats://${host}:${port}`,
    port,
    storeDir,
    process: current.proc,
    log: () => logText,
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopProcess('SIGTERM');
      if (ownStore) fs.rmSync(storeDir, { recursive: true, force: true });
      removeAuth();
    },
    async restart(r = {}) {
      if (stopped) throw new NatsServerStartError('restart() after stop()');
      await stopProcess(r.hard ? 'SIGKILL' : 'SIGTERM');
      if (r.downMs) await sleep(r.downMs);
      // The old socket may linger for a moment; retry the bind briefly rather than failing the test.
      let lastErr: unknown;
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          current = await launch(port);
          handle.process = current.proc;
          return;
        } catch (e) {
          if (e instanceof NatsServerNotFoundError) throw e;
          lastErr = e;
          await sleep(250);
        }
      }
      throw new NatsServerStartError(`could not restart nats-server on port ${port}`, { cause: lastErr });
    },
  };
  return handle;
}

async function waitTcp(host: string, port: number, tries: number): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await tcpReachable(host, port)) return true;
    await sleep(50);
  }
  return false;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
