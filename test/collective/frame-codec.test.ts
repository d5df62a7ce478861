import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFrame, encodeFrame, FrameKind } from '../../src/collective/frame-codec.js';
import { decodeHello, encodeHello } from '../../src/collective/hello.js';
import {
  bf16ToF32,
  decodeAdd,
  decodeCopy,
  encodeInto,
  f16ToF32,
  f32BitsToBf16,
  f32BitsToF16,
} from '../../src/collective/wire-format.js';
import { Frame, Hello } from '../../src/generated/collective.js';

describe('frame codec', () => {
  it('the hand-written Frame codec is byte-compatible both ways with the code generated from the .proto', () => {
    const payload = Uint8Array.from({ length: 37 }, (_, i) => i * 7);
    const header = {
      jobId: 'job-ü',
      generation: 2 ** 40 + 3,
      step: 123456789012,
      op: 5,
      seq: 300,
      from: 4,
      kind: FrameKind.Data,
      wire: 2,
      totalElements: 2 ** 33,
      reason: 'why',
    };
    const enc = encodeFrame(header, new TextEncoder().encode(header.jobId), payload.length);
    enc.buffer.set(payload, enc.payloadOffset);
    const viaPbjs = Frame.toObject(Frame.decode(enc.buffer), { longs: Number, enums: Number });
    assert.equal(viaPbjs.jobId, header.jobId);
    assert.equal(viaPbjs.generation, header.generation);
    assert.equal(viaPbjs.step, header.step);
    assert.equal(viaPbjs.op, 5);
    assert.equal(viaPbjs.seq, 300);
    assert.equal(viaPbjs.fromRank, 4);
    assert.equal(viaPbjs.kind, 1);
    assert.equal(viaPbjs.wire, 2);
    assert.equal(viaPbjs.totalElements, 2 ** 33);
    assert.equal(viaPbjs.reason, 'why');
    assert.deepEqual(new Uint8Array(viaPbjs.payload), payload);
    // The payload lands 8-byte aligned once gRPC's 5-byte prefix is in front.
    assert.equal((5 + enc.payloadOffset) % 8, 0);

    const pbjsBytes = Frame.encode(
      Frame.fromObject({ ...header, fromRank: 4, payload, unknownLater: 1 }),
    ).finish();
    const back = decodeFrame(pbjsBytes);
    assert.equal(back.jobId, header.jobId);
    assert.equal(back.generation, header.generation);
    assert.equal(back.step, header.step);
    assert.equal(back.from, 4);
    assert.equal(back.totalElements, 2 ** 33);
    assert.deepEqual(Array.from(back.payload), Array.from(payload));

    // Every field at its proto3 default: the generated encoder writes nothing for them; ours may, and both read both.
    const zeros = {
      jobId: '',
      generation: 0,
      step: 0,
      op: 0,
      seq: 0,
      from: 0,
      kind: 0,
      wire: 0,
      totalElements: 0,
    };
    const empty = encodeFrame(zeros, new Uint8Array(0), 0);
    const zerosViaPbjs = Frame.toObject(Frame.decode(empty.buffer), { longs: Number, defaults: true });
    assert.equal(zerosViaPbjs.generation, 0);
    assert.equal(zerosViaPbjs.payload.length, 0);
    const zerosBack = decodeFrame(Frame.encode(Frame.fromObject({})).finish());
    assert.deepEqual(
      { ...zerosBack, payload: [...zerosBack.payload] },
      { ...zeros, reason: undefined, payload: [] },
    );
  });

  it('Hello goes through the generated code: the proto3 bytes, and back', () => {
    const hello = { jobId: 'j', generation: 9, rank: 3, worldSize: 5 };
    // field 1 (len 1, 'j'), 2 = 9, 3 = 3, 4 = 5: the encoding proto3 fixes for these values.
    assert.deepEqual([...encodeHello(hello)], [0x0a, 1, 0x6a, 0x10, 9, 0x18, 3, 0x20, 5]);
    assert.deepEqual(decodeHello(encodeHello(hello)), hello);
    const big = { jobId: 'job-ü', generation: 2 ** 40 + 3, rank: 0, worldSize: 300 };
    assert.deepEqual(decodeHello(encodeHello(big)), big);
    const viaPbjs = Hello.toObject(Hello.decode(encodeHello(big)), { longs: Number, defaults: true });
    const { mac, nonce, timeMs, ...identity } = viaPbjs;
    assert.deepEqual(identity, big);
    // No proof given: the authentication fields are proto3 defaults (empty bytes, 0).
    assert.deepEqual([mac.length, nonce.length, timeMs], [0, 0, 0]);
    assert.throws(() => decodeHello(encodeHello(hello).subarray(0, 4)), RangeError);
  });

  it('rejects truncated input instead of reading past it', () => {
    const enc = encodeFrame(
      { jobId: 'j', generation: 1, step: 1, op: 0, seq: 0, from: 0, kind: 1, wire: 1, totalElements: 4 },
      new TextEncoder().encode('j'),
      16,
    );
    assert.throws(() => decodeFrame(enc.buffer.subarray(0, enc.buffer.length - 3)), RangeError);
  });
});

describe('wire formats', () => {
  const bitsOf = (x: number): number => new Uint32Array(Float32Array.of(x).buffer)[0]!;

  it('f16 rounds to nearest even, saturates to infinity, keeps subnormals and NaN', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65519, 0x7bff], // below the midpoint to 65536
      [65520, 0x7c00], // the midpoint rounds (to even) up to infinity
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal: even is 0
      [1 + 2 ** -11, 0x3c00], // tie: stays on even 1.0
      [1 + 3 * 2 ** -11, 0x3c02], // tie: rounds up to even
      [Number.POSITIVE_INFINITY, 0x7c00],
    ];
    for (const [x, h] of cases) assert.equal(f32BitsToF16(bitsOf(x)), h, `f16(${x})`);
    assert.ok(Number.isNaN(f16ToF32(f32BitsToF16(bitsOf(Number.NaN)))));
    for (let h = 0; h < 0x7c00; h += 37)
      assert.equal(f32BitsToF16(bitsOf(f16ToF32(h))), h, `round trip ${h}`);
  });

  it('bf16 rounds to nearest even and keeps NaN a NaN', () => {
    assert.equal(f32BitsToBf16(bitsOf(1)), 0x3f80);
    assert.equal(f32BitsToBf16(0x3f808000), 0x3f80); // tie, even stays
    assert.equal(f32BitsToBf16(0x3f818000), 0x3f82); // tie, rounds up to even
    assert.equal(f32BitsToBf16(0x3f808001), 0x3f81);
    assert.ok(Number.isNaN(bf16ToF32(f32BitsToBf16(0x7f800001))));
    assert.equal(bf16ToF32(0x3f80), 1);
  });

  it('encode + decodeAdd/decodeCopy agree with element-wise conversion, aligned or not', () => {
    const src = Float32Array.from({ length: 101 }, (_, i) => (i - 50) * 0.37);
    for (const wire of ['f32', 'f16', 'bf16'] as const) {
      const bpe = wire === 'f32' ? 4 : 2;
      for (const shift of [0, 1]) {
        const raw = new Uint8Array(src.length * bpe + 8);
        const dst = raw.subarray(shift, shift + src.length * bpe);
        encodeInto(wire, src, 0, src.length, dst);
        const copy = new Float32Array(src.length);
        decodeCopy(wire, dst, copy, 0, src.length);
        const added = Float32Array.from(src);
        decodeAdd(wire, dst, added, 0, src.length);
        for (let i = 0; i < src.length; i++) {
          const b = bitsOf(src[i]!);
          const expect =
            wire === 'f32'
              ? src[i]!
              : wire === 'f16'
                ? f16ToF32(f32BitsToF16(b))
                : bf16ToF32(f32BitsToBf16(b));
          assert.equal(copy[i], expect, `${wire} shift ${shift} [${i}]`);
          assert.equal(added[i], Math.fround(src[i]! + expect));
        }
      }
    }
  });
});
