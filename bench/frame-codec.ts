/**
 * Why the collective's Frame keeps a hand-written codec (src/collective/frame-codec.ts) while every other message
 * uses the code generated from proto/ (src/generated/): one chunk of an all-reduce, encoded into a frame and
 * decoded into the receiver's buffer, both ways, in one process.
 *
 *   hand:      encodeFrame reserves the payload in the frame buffer and encodeInto writes the floats there
 *              (f16 converted in place); decodeFrame gives a view, which decodeAdd reads through an aligned
 *              typed array.
 *   generated: encodeInto writes the floats into a payload array, Frame.encode copies it into its writer; decode
 *              through Frame.decode, then decodeAdd on whatever alignment the payload landed at.
 *
 *   npm run bench -- frame-codec [--json] [--sizes 4K,64K,1M,16M] [--wire f32,f16] [--ms 300]
 *
 * Each cell is the median CPU time per chunk over interleaved rounds of `--ms` milliseconds each (see timePair);
 * `x` = generated / hand, per direction.
 */
import { decodeFrame, encodeFrame, FrameKind } from '../src/collective/frame-codec.js';
import {
  bytesPerElement,
  decodeAdd,
  encodeInto,
  WIRE_CODE,
  type WireFormat,
} from '../src/collective/wire-format.js';
import { Frame } from '../src/generated/collective.js';

const USAGE =
  'usage: npm run bench -- frame-codec [--json] [--sizes 4K,64K,1M,16M] [--wire f32,f16] [--ms 300]';
const ROUNDS = 7;

function parseSize(s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s);
  if (!m) throw new Error(`bad size '${s}'\n${USAGE}`);
  return (
    Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G']
  );
}

/**
 * Median CPU microseconds (user + system) per call of `a` and of `b`, over ROUNDS interleaved rounds of about
 * `ms` each. CPU time, not wall time: on a machine other processes load, a descheduled interval then counts for
 * neither side; interleaving puts any slow period on both.
 */
function timePair(a: () => void, b: () => void, ms: number): [number, number] {
  for (let i = 0; i < 3; i++) {
    a();
    b();
  }
  const per: [number[], number[]] = [[], []];
  const round = (fn: () => void): number => {
    let n = 0;
    const start = process.cpuUsage();
    const wallStart = performance.now();
    while (performance.now() - wallStart < ms) {
      fn();
      n++;
    }
    const used = process.cpuUsage(start);
    return (used.user + used.system) / n;
  };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? [0, 1] : [1, 0];
    for (const k of order) per[k]!.push(round(k === 0 ? a : b));
  }
  const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  return [median(per[0]), median(per[1])];
}

export async function main(args: string[]): Promise<void> {
  let json = false;
  let sizes = ['4K', '64K', '1M', '16M'].map(parseSize);
  let wires: WireFormat[] = ['f32', 'f16'];
  let ms = 300;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const val = (): string => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === '--json') json = true;
    else if (a === '--sizes') sizes = val().split(',').map(parseSize);
    else if (a === '--wire') wires = val().split(',') as WireFormat[];
    else if (a === '--ms') ms = Number(val());
    else if (a === '--help') {
      console.log(USAGE);
      return;
    } else throw new Error(`unknown option '${a}'\n${USAGE}`);
  }
  const jobId = 'bench-job';
  const jobIdBytes = new TextEncoder().encode(jobId);
  if (!json)
    console.log('# chunk_bytes  wire  hand_enc_us  gen_enc_us      x  hand_dec_us  gen_dec_us      x');
  for (const bytes of sizes) {
    const count = bytes / 4;
    const src = Float32Array.from({ length: count }, (_, i) => ((i * 31) % 17) - 8);
    const dst = new Float32Array(count);
    for (const wire of wires) {
      const payloadBytes = count * bytesPerElement(wire);
      const header = {
        jobId,
        generation: 3,
        step: 1234,
        op: 56,
        seq: 0,
        from: 1,
        kind: FrameKind.Data,
        wire: WIRE_CODE[wire],
        totalElements: count * 4,
      };
      const hand = (): Buffer => {
        const { buffer, payloadOffset } = encodeFrame(header, jobIdBytes, payloadBytes);
        encodeInto(wire, src, 0, count, buffer.subarray(payloadOffset, payloadOffset + payloadBytes));
        return buffer;
      };
      const generated = (): Uint8Array => {
        const payload = new Uint8Array(payloadBytes);
        encodeInto(wire, src, 0, count, payload);
        return Frame.encode(Frame.create({ ...header, fromRank: header.from, payload })).finish();
      };
      // What a receiver gets: the message alone in a fresh buffer after gRPC's 5-byte prefix.
      const received = (msg: Uint8Array): Uint8Array => {
        const b = new Uint8Array(5 + msg.length);
        b.set(msg, 5);
        return b.subarray(5);
      };
      const handMsg = received(hand());
      const genMsg = received(generated());
      const [handEnc, genEnc] = timePair(hand, generated, ms);
      const [handDec, genDec] = timePair(
        () => decodeAdd(wire, decodeFrame(handMsg).payload, dst, 0, count),
        () =>
          decodeAdd(
            wire,
            (Frame.decode(genMsg) as unknown as { payload: Uint8Array }).payload,
            dst,
            0,
            count,
          ),
        ms,
      );
      const row = {
        chunkBytes: bytes,
        wire,
        handEncodeUs: Number(handEnc.toFixed(2)),
        generatedEncodeUs: Number(genEnc.toFixed(2)),
        encodeRatio: Number((genEnc / handEnc).toFixed(2)),
        handDecodeUs: Number(handDec.toFixed(2)),
        generatedDecodeUs: Number(genDec.toFixed(2)),
        decodeRatio: Number((genDec / handDec).toFixed(2)),
      };
      if (json) console.log(JSON.stringify(row));
      else {
        console.log(
          `${String(bytes).padStart(13)}  ${wire.padEnd(4)}  ${handEnc.toFixed(1).padStart(11)}  ${genEnc
            .toFixed(1)
            .padStart(
              10,
            )}  ${row.encodeRatio.toFixed(2).padStart(5)}  ${handDec.toFixed(1).padStart(11)}  ${genDec
            .toFixed(1)
            .padStart(10)}  ${row.decodeRatio.toFixed(2).padStart(5)}`,
        );
      }
    }
  }
}
