/** Starts N worker processes (test/collective/worker.ts, compiled) on loopback and talks to them over IPC. */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AlgorithmChoice, PeerInfo, WireFormat } from '../../src/collective/index.js';

export interface WorkerResult {
  ok: boolean;
  ms: number;
  algorithm?: string;
  unchanged?: boolean;
  violations?: number;
  worstRatio?: number;
  firstBad?: unknown;
  hash?: number;
  name?: string;
  message?: string;
  peerRank?: number;
}

export interface GroupOptions {
  timeoutMs?: number;
  chunkBytes?: number;
  jobId?: string;
  generation?: number;
}

let nextId = 1;

export class WorkerGroup {
  readonly peers: PeerInfo[];
  private constructor(
    readonly children: ChildProcess[],
    addresses: string[],
  ) {
    this.peers = addresses.map((address, rank) => ({ rank, address }));
  }

  static async start(n: number, o: GroupOptions = {}): Promise<WorkerGroup> {
    const file = fileURLToPath(new URL('./worker.js', import.meta.url));
    const children = Array.from({ length: n }, () =>
      fork(file, [], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        // Not the test runner's flags or its child-process context: the worker is a plain program.
        execArgv: [],
        env: { ...process.env, NODE_TEST_CONTEXT: undefined },
      }),
    );
    // A group that fails to start must not leave its other children running: they would hold the test
    // process open through their IPC channels and hang the whole suite.
    const killAll = () => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    };
    let addresses: { address: string }[];
    try {
      addresses = await Promise.all(
        children.map((c) => waitFor<{ address: string }>(c, (m) => m.type === 'listening')),
      );
    } catch (err) {
      killAll();
      throw err;
    }
    const g = new WorkerGroup(
      children,
      addresses.map((a) => a.address),
    );
    await Promise.all(
      children.map((c, rank) => {
        const p = waitFor(c, (m) => m.type === 'connected').catch((err: unknown) => {
          killAll();
          throw err;
        });
        c.send({
          type: 'connect',
          rank,
          peers: g.peers,
          jobId: o.jobId ?? 'test-job',
          generation: o.generation ?? 1,
          timeoutMs: o.timeoutMs ?? 20_000,
          chunkBytes: o.chunkBytes,
        });
        return p;
      }),
    );
    return g;
  }

  /** Asks every worker to all-reduce; resolves with each rank's result. */
  allReduce(r: {
    step: number;
    seed: number;
    length: number;
    op?: 'sum' | 'mean';
    wire?: WireFormat;
    algorithm?: AlgorithmChoice;
    ranks?: number[];
  }): Promise<WorkerResult[]> {
    const id = nextId++;
    const ranks = r.ranks ?? this.children.map((_, i) => i);
    return Promise.all(
      ranks.map((rank) => {
        const c = this.children[rank]!;
        const p = waitFor<WorkerResult>(c, (m) => m.type === 'result' && m.id === id);
        c.send({ type: 'allreduce', id, op: 'sum', wire: 'f32', algorithm: 'auto', ...r, ranks: undefined });
        return p;
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            if (c.connected) c.send({ type: 'close' });
            else c.kill('SIGKILL');
          }),
      ),
    );
  }
}

export function waitFor<T>(
  c: ChildProcess,
  pred: (m: { type: string } & Record<string, unknown>) => boolean,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMsg = (m: { type: string } & Record<string, unknown>): void => {
      if (m.type === 'fatal') {
        cleanup();
        reject(new Error(`worker failed: ${m.message as string}`));
      } else if (pred(m)) {
        cleanup();
        resolve(m as T);
      }
    };
    const onExit = (code: number | null, signal: string | null): void => {
      cleanup();
      reject(new Error(`worker exited (code ${code}, signal ${signal})`));
    };
    const cleanup = (): void => {
      c.off('message', onMsg);
      c.off('exit', onExit);
    };
    c.on('message', onMsg);
    c.on('exit', onExit);
  });
}
