/**
 * Ring all-reduce (Patarasuk & Yuan; what NCCL and Horovod use for large buffers): bandwidth-optimal, each rank
 * sends and receives 2(N-1)/N of the buffer.
 *
 * The buffer is cut into N segments (segment i = [floor(i*L/N), floor((i+1)*L/N)), so lengths not divisible by N
 * and L < N work), each segment into chunks of at most `chunkElements`.
 *   1. Reduce-scatter, N-1 steps: at step s rank r receives segment (r-s-1) mod N from r-1, adds its own, and
 *      forwards it to r+1 at step s+1. After the last step r holds segment (r+1) mod N fully reduced.
 *   2. All-gather, N-1 steps: at step s rank r receives the finished segment (r-s) mod N from r-1, stores it, and
 *      forwards it.
 * Pipelining is per chunk, with no barrier between steps or phases: a chunk is forwarded as soon as it is reduced,
 * so while this rank adds chunk k its predecessor is already streaming chunk k+1 and its successor reducing k-1.
 * With a 16-bit wire the owner rounds its finished segment before forwarding it, so every rank ends bit-identical.
 */
import type { OpContext } from './op-context.js';
import { roundTrip } from './wire-format.js';

export async function ringAllReduce(ctx: OpContext, buf: Float32Array): Promise<void> {
  const n = ctx.worldSize;
  const r = ctx.rank;
  if (n === 1 || buf.length === 0) return;
  const next = (r + 1) % n;
  const prev = (r - 1 + n) % n;
  const len = buf.length;
  const mod = (x: number): number => ((x % n) + n) % n;
  const segStart = (i: number): number => Math.floor((i * len) / n);
  const segChunks = (seg: number): [number, number][] =>
    ctx.chunks(segStart(seg), segStart(seg + 1) - segStart(seg));

  for (const [off, count] of segChunks(r)) await ctx.send(next, buf, off, count);
  for (let s = 0; s < n - 1; s++) {
    for (const [off, count] of segChunks(mod(r - s - 1))) {
      await ctx.recvAdd(prev, buf, off, count, 'ring reduce-scatter data');
      if (s === n - 2) roundTrip(ctx.wire, buf, off, count);
      // Step s+1 of the reduce-scatter, or (after the last step) step 0 of the all-gather.
      await ctx.send(next, buf, off, count);
    }
  }
  for (let s = 0; s < n - 1; s++) {
    for (const [off, count] of segChunks(mod(r - s))) {
      await ctx.recvCopy(prev, buf, off, count, 'ring all-gather data');
      if (s < n - 2) await ctx.send(next, buf, off, count);
    }
  }
}
