/**
 * Recursive halving-doubling all-reduce (Rabenseifner; Thakur, Rabenseifner & Gropp 2005, as in MPICH and Gloo):
 * 2*log2(P) message rounds instead of the ring's 2(N-1), so it wins when per-message latency dominates.
 *
 * P = the largest power of two <= N, R = N - P.
 *   0. Fix-up (only when N is not a power of two): among ranks 0..2R-1, each even rank sends its whole buffer to
 *      the odd rank above it, which adds it and takes part as "virtual rank" r/2; ranks >= 2R take part as r-R.
 *   1. Reduce-scatter by recursive halving: for mask = P/2, P/4, ..., 1 a virtual rank exchanges halves of its
 *      current block range with virtual rank ^ mask, keeping (and adding into) the half its mask bit selects.
 *      Virtual rank v ends owning block v (blocks: [floor(b*L/P), floor((b+1)*L/P))).
 *   2. All-gather by recursive doubling: for mask = 1, 2, ..., P/2 exchange the owned range with virtual rank ^ mask.
 *   3. Fix-up: each odd rank below 2R sends the result to the even rank below it.
 * Every block is reduced exactly once (by its owner) and copied everywhere else, so all ranks end bit-identical.
 */
import type { OpContext } from './op-context.js';
import { roundTrip } from './wire-format.js';

export async function halvingDoublingAllReduce(ctx: OpContext, buf: Float32Array): Promise<void> {
  const n = ctx.worldSize;
  const rank = ctx.rank;
  const len = buf.length;
  if (n === 1 || len === 0) return;
  let pof2 = 1;
  while (pof2 * 2 <= n) pof2 *= 2;
  const rem = n - pof2;

  let vrank: number;
  if (rank < 2 * rem) {
    if (rank % 2 === 0) {
      await ctx.sendRange(rank + 1, buf, 0, len);
      vrank = -1;
    } else {
      await ctx.recvRangeAdd(rank - 1, buf, 0, len, 'halving-doubling fix-up contribution');
      vrank = rank >> 1;
    }
  } else {
    vrank = rank - rem;
  }

  if (vrank >= 0) {
    const real = (v: number): number => (v < rem ? v * 2 + 1 : v + rem);
    const at = (block: number): number => Math.floor((block * len) / pof2);
    let lo = 0;
    let hi = pof2;
    for (let mask = pof2 >> 1; mask >= 1; mask >>= 1) {
      const partner = real(vrank ^ mask);
      const mid = lo + ((hi - lo) >> 1);
      const upper = (vrank & mask) !== 0;
      const [keepLo, keepHi, sendLo, sendHi] = upper ? [mid, hi, lo, mid] : [lo, mid, mid, hi];
      await Promise.all([
        ctx.sendRange(partner, buf, at(sendLo), at(sendHi) - at(sendLo)),
        ctx.recvRangeAdd(
          partner,
          buf,
          at(keepLo),
          at(keepHi) - at(keepLo),
          'halving-doubling reduce-scatter data',
        ),
      ]);
      lo = keepLo;
      hi = keepHi;
    }
    roundTrip(ctx.wire, buf, at(lo), at(hi) - at(lo));
    for (let mask = 1; mask < pof2; mask <<= 1) {
      const partner = real(vrank ^ mask);
      const size = hi - lo;
      const [pLo, pHi] = (vrank & mask) !== 0 ? [lo - size, lo] : [hi, hi + size];
      await Promise.all([
        ctx.sendRange(partner, buf, at(lo), at(hi) - at(lo)),
        ctx.recvRangeCopy(partner, buf, at(pLo), at(pHi) - at(pLo), 'halving-doubling all-gather data'),
      ]);
      lo = Math.min(lo, pLo);
      hi = Math.max(hi, pHi);
    }
  }

  if (rank < 2 * rem) {
    if (rank % 2 === 1) await ctx.sendRange(rank - 1, buf, 0, len);
    else await ctx.recvRangeCopy(rank + 1, buf, 0, len, 'halving-doubling fix-up result');
  }
}
