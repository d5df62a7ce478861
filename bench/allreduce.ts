/**
 * All-reduce benchmark, measured the way nccl-tests measures NCCL: per size, time per op after warm-up,
 * algbw = size / time, busbw = algbw * 2(N-1)/N (the per-link traffic of an optimal all-reduce, so numbers are
 * comparable across N). In the same run and between the same processes, the same ring over plain TCP sockets
 * gives the ceiling Node reaches on this machine's network path; `ratio` = gRPC busbw / TCP busbw.
 *
 *   npm run bench -- allreduce [--json] [--n 2,3,4] [--sizes 4K,1M,64M] [--iters K] [--compare-algorithms]
 *
 * Inputs are small integers, so float32 sums are exact and every iteration's result is compared for equality
 * (the `wrong` column counts mismatching iterations over all ranks). Time per size is the median over iterations
 * of the slowest rank's time (the machine is shared, and the median resists other processes' bursts).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  type AlgorithmChoice,
  Collective,
  GrpcTransport,
  type PeerInfo,
  TcpTransport,
  type Transport,
} from '../src/collective/index.js';

type Kind = 'grpc' | 'tcp';

interface RunCommand {
  type: 'run';
  kind: Kind;
  bytes: number;
  iters: number;
  warmup: number;
  algorithm: AlgorithmChoice;
  step: number;
}

interface RunResult {
  type: 'result';
  times: number[];
  wrong: number;
  algorithm: string;
}

function input(rank: number, len: number): Float32Array {
  const a = new Float32Array(len);
  for (let i = 0; i < len; i++) a[i] = ((i * 31 + rank * 17) % 17) - 8;
  return a;
}

async function worker(): Promise<void> {
  const send = (m: unknown): void => {
    process.send!(m);
  };
  const listeners: Record<Kind, Transport> = {
    grpc: await GrpcTransport.listen({}),
    tcp: await TcpTransport.listen({}),
  };
  send({ type: 'listening', grpc: listeners.grpc.address, tcp: listeners.tcp.address });
  const comms: Partial<Record<Kind, Collective>> = {};
  process.on('message', async (m: { type: string } & Record<string, unknown>) => {
    if (m.type === 'connect') {
      const rank = m.rank as number;
      for (const kind of ['grpc', 'tcp'] as const) {
        await listeners[kind].connect(m[kind] as PeerInfo[], {
          jobId: 'bench',
          generation: 1,
          rank,
          timeoutMs: 60_000,
        });
        comms[kind] = new Collective(listeners[kind], { chunkBytes: m.chunkBytes as number | undefined });
      }
      send({ type: 'connected' });
    } else if (m.type === 'run') {
      const c = m as unknown as RunCommand;
      const comm = comms[c.kind]!;
      const len = c.bytes / 4;
      const mine = input(comm.rank, len);
      const expected = new Float32Array(len);
      for (let r = 0; r < comm.worldSize; r++) {
        const x = input(r, len);
        for (let i = 0; i < len; i++) expected[i]! += x[i]!;
      }
      const times: number[] = [];
      let wrong = 0;
      for (let it = 0; it < c.warmup + c.iters; it++) {
        const t0 = performance.now();
        const out = await comm.allReduce(mine, { step: c.step + it, algorithm: c.algorithm });
        const dt = performance.now() - t0;
        if (it >= c.warmup) times.push(dt);
        let ok = out.length === len;
        for (let i = 0; ok && i < len; i++) ok = out[i] === expected[i];
        if (!ok) wrong++;
      }
      send({
        type: 'result',
        times,
        wrong,
        algorithm: comm.stats().lastAlgorithm ?? 'none',
      } satisfies RunResult);
    } else if (m.type === 'close') {
      await Promise.all(Object.values(comms).map((c) => c.close()));
      process.exit(0);
    }
  });
}

class Group {
  private constructor(readonly children: ChildProcess[]) {}

  static async start(n: number): Promise<Group> {
    const file = fileURLToPath(import.meta.url);
    const children = Array.from({ length: n }, () => fork(file, ['--bench-worker'], { stdio: 'inherit' }));
    const g = new Group(children);
    const addrs = (await g.all({ type: 'noop' }, 'listening', false)) as { grpc: string; tcp: string }[];
    const chunkBytes = process.env.PM_BENCH_CHUNK_BYTES
      ? Number(process.env.PM_BENCH_CHUNK_BYTES)
      : undefined;
    const peers = (k: Kind): PeerInfo[] => addrs.map((a, rank) => ({ rank, address: a[k] }));
    await Promise.all(
      children.map((c, rank) =>
        g.one(c, { type: 'connect', rank, grpc: peers('grpc'), tcp: peers('tcp'), chunkBytes }, 'connected'),
      ),
    );
    return g;
  }

  one(c: ChildProcess, msg: unknown, reply: string, sendIt = true): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const onMsg = (m: { type: string }): void => {
        if (m.type !== reply) return;
        c.off('message', onMsg);
        c.off('exit', onExit);
        resolve(m);
      };
      const onExit = (code: number | null): void => reject(new Error(`bench worker exited with ${code}`));
      c.on('message', onMsg);
      c.once('exit', onExit);
      if (sendIt) c.send(msg as object);
    });
  }

  all(msg: unknown, reply: string, sendIt = true): Promise<unknown[]> {
    return Promise.all(this.children.map((c) => this.one(c, msg, reply, sendIt)));
  }

  async close(): Promise<void> {
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((resolve) => {
            c.once('exit', () => resolve());
            c.send({ type: 'close' });
          }),
      ),
    );
  }
}

function parseSize(s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s.trim());
  if (!m) throw new Error(`bad size '${s}': use e.g. 4096, 4K, 16M`);
  const mul = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * mul;
}

function fmtSize(b: number): string {
  if (b >= 1024 ** 2) return `${b / 1024 ** 2}M`;
  if (b >= 1024) return `${b / 1024}K`;
  return `${b}`;
}

/** Rounds per size in which the two transports alternate (see the measuring loop). */
const ROUNDS = 4;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const USAGE = `usage: npm run bench -- allreduce [--json] [--n 2,3,4] [--sizes 4K,16K,...,64M] [--iters K]
  [--algorithm auto|ring|halving-doubling] [--compare-algorithms]`;

export async function main(args: string[]): Promise<void> {
  let json = false;
  let ns = [2, 3, 4];
  let sizes = [4, 16, 64, 256, 1024, 4096, 16384, 65536].map((k) => k * 1024);
  let itersOverride: number | undefined;
  let algorithms: AlgorithmChoice[] = ['auto'];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    const val = (): string => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === '--json') json = true;
    else if (a === '--n') ns = val().split(',').map(Number);
    else if (a === '--sizes') sizes = val().split(',').map(parseSize);
    else if (a === '--iters') itersOverride = Number(val());
    else if (a === '--algorithm') algorithms = [val() as AlgorithmChoice];
    else if (a === '--compare-algorithms') algorithms = ['ring', 'halving-doubling'];
    else if (a === '--help') {
      console.log(USAGE);
      return;
    } else throw new Error(`unknown option '${a}'\n${USAGE}`);
  }
  if (!json) {
    console.log(
      '# size       N  algorithm         grpc_us   algbw_GB/s  busbw_GB/s    tcp_us  tcp_busbw  ratio  wrong',
    );
  }
  let step = 0;
  for (const n of ns) {
    const group = await Group.start(n);
    try {
      for (const bytes of sizes) {
        for (const algorithm of algorithms) {
          const iters = itersOverride ?? (bytes <= 1 << 20 ? 20 : bytes <= 16 << 20 ? 8 : 4);
          const warmup = bytes <= 1 << 20 ? 5 : 1;
          // Both transports run in alternating rounds (gRPC, TCP, TCP, gRPC, ...), and each one's time is the median
          // over all its iterations: on a shared machine a burst of other work then hits both sides alike instead
          // of whichever happened to run during it.
          const perIter: Record<Kind, number[]> = { grpc: [], tcp: [] };
          const wrong: Record<Kind, number> = { grpc: 0, tcp: 0 };
          let algorithmName = '';
          const measure = async (kind: Kind, roundIters: number): Promise<void> => {
            const cmd: RunCommand = { type: 'run', kind, bytes, iters: roundIters, warmup, algorithm, step };
            step += roundIters + warmup;
            const rs = (await group.all(cmd, 'result')) as RunResult[];
            for (let it = 0; it < rs[0]!.times.length; it++)
              perIter[kind].push(Math.max(...rs.map((r) => r.times[it]!)));
            wrong[kind] += rs.reduce((s, r) => s + r.wrong, 0);
            if (kind === 'grpc') algorithmName = rs[0]!.algorithm;
          };
          const rounds = Math.min(iters, ROUNDS);
          for (let r = 0; r < rounds; r++) {
            const roundIters = Math.floor(iters / rounds) + (r < iters % rounds ? 1 : 0);
            const order: Kind[] = r % 2 === 0 ? ['grpc', 'tcp'] : ['tcp', 'grpc'];
            for (const kind of order) await measure(kind, roundIters);
          }
          const g = { time: median(perIter.grpc) / 1000, wrong: wrong.grpc, algorithm: algorithmName };
          const t = { time: median(perIter.tcp) / 1000, wrong: wrong.tcp };
          const algbw = bytes / g.time;
          const factor = (2 * (n - 1)) / n;
          const busbw = algbw * factor;
          const tcpBusbw = (bytes / t.time) * factor;
          const row = {
            size: bytes,
            n,
            algorithm: g.algorithm,
            timeUs: Math.round(g.time * 1e6),
            algbw: Math.round(algbw),
            busbw: Math.round(busbw),
            tcpTimeUs: Math.round(t.time * 1e6),
            tcpBusbw: Math.round(tcpBusbw),
            ratio: Number((busbw / tcpBusbw).toFixed(3)),
            iters,
            wrong: g.wrong + t.wrong,
            correct: g.wrong + t.wrong === 0,
          };
          if (json) console.log(JSON.stringify(row));
          else {
            console.log(
              `${fmtSize(bytes).padStart(6)} ${String(n).padStart(6)}  ${row.algorithm.padEnd(16)} ${String(row.timeUs).padStart(9)}` +
                `  ${(algbw / 1e9).toFixed(3).padStart(10)}  ${(busbw / 1e9).toFixed(3).padStart(10)}` +
                ` ${String(row.tcpTimeUs).padStart(9)}  ${(tcpBusbw / 1e9).toFixed(3).padStart(9)}` +
                `  ${row.ratio.toFixed(2).padStart(5)}  ${String(row.wrong).padStart(5)}`,
            );
          }
        }
      }
    } finally {
      await group.close();
    }
  }
}

if (process.argv[2] === '--bench-worker') await worker();
