import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  bf16ToFloat32,
  f16ToFloat32,
  float32ToBf16,
  float32ToF16,
  halfBitsToNumber,
  numberToHalfBits,
  toFloat32,
} from '../../src/model/checkpoint/index.js';

const fromBits = (b: number) => new Float32Array(new Uint32Array([b]).buffer)[0]!;
const f32max = fromBits(0x7f7fffff);

test('bf16 bits decode to the hand-computed float32 values', () => {
  // 0x4049 = 0|10000000|1001001: 2 * (1 + 73/128) = 3.140625.
  const got = bf16ToFloat32(
    Uint16Array.from([0x3f80, 0xc000, 0x3f00, 0x4049, 0x0000, 0x8000, 0x7f80, 0xff80, 0x0001]),
  );
  assert.deepEqual(
    [...got],
    [1, -2, 0.5, 3.140625, 0, -0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** -133],
  );
  assert.ok(Number.isNaN(bf16ToFloat32(Uint16Array.from([0x7fc0]))[0]));
});

test('float32 -> bf16 rounds to nearest, ties to even, overflow to inf, NaN quiet', () => {
  const inputs = [1, Math.PI, 1.00390625, 1.01171875, fromBits(0x3f808001), f32max, Number.NaN, -0];
  // 1.00390625 = 1 + 2^-8 is a tie between 0x3f80 (even) and 0x3f81: stays 0x3f80.
  // 1.01171875 = 1 + 3*2^-8 is a tie between 0x3f81 (odd) and 0x3f82: goes to 0x3f82.
  // 0x3f808001 is one ulp above the tie: rounds up to 0x3f81. f32 max rounds past bf16 max to inf.
  assert.deepEqual(
    [...float32ToBf16(Float32Array.from(inputs))],
    [0x3f80, 0x4049, 0x3f80, 0x3f82, 0x3f81, 0x7f80, 0x7fc0, 0x8000],
  );
});

test('f16 bits decode to the hand-computed values, subnormals and specials included', () => {
  const got = f16ToFloat32(
    Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0400, 0x0001, 0x3555, 0x2e66, 0x8000, 0xfc00]),
  );
  assert.deepEqual(
    [...got],
    [1, -2, 65504, 2 ** -14, 2 ** -24, 0.333251953125, 0.0999755859375, -0, Number.NEGATIVE_INFINITY],
  );
  assert.ok(Number.isNaN(halfBitsToNumber(0x7e00)));
});

test('float32 -> f16 rounds to nearest even across normal, subnormal and overflow ranges', () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [0.1, 0x2e66],
    [1 / 3, 0x3555],
    [65504, 0x7bff],
    [65519, 0x7bff], // below the midpoint to 65536
    [65520, 0x7c00], // the midpoint ties to even = infinity
    [1e6, 0x7c00],
    [2 ** -14, 0x0400],
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal: even is 0
    [1.5 * 2 ** -25, 0x0001],
    [3 * 2 ** -25, 0x0002], // 1.5 subnormal units: tie goes to even (2)
    [1e-10, 0x0000],
    [-2, 0xc000],
    [Number.NEGATIVE_INFINITY, 0xfc00],
    [1 + 2 ** -11, 0x3c00], // tie at the top of the mantissa: stays even
    [1 + 3 * 2 ** -11, 0x3c02],
  ];
  for (const [x, bits] of cases) assert.equal(numberToHalfBits(x), bits, `f16(${x})`);
  assert.equal(numberToHalfBits(Number.NaN) & 0x7c00, 0x7c00);
  assert.notEqual(numberToHalfBits(Number.NaN) & 0x3ff, 0);
  // Every finite half survives half -> float32 -> half.
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = float32ToF16(f16ToFloat32(all));
  for (let h = 0; h < 65536; h++) {
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue;
    assert.equal(back[h], h, `half 0x${h.toString(16)}`);
  }
});

test('fp8 tensors widen to float32', () => {
  const e4m3 = toFloat32(
    { dtype: 'F8_E4M3', shape: [5], data: Uint8Array.from([0x38, 0x7e, 0x01, 0xb8, 0x7f]) },
    'f',
    't',
  );
  assert.deepEqual([...e4m3.subarray(0, 4)], [1, 448, 2 ** -9, -1]);
  assert.ok(Number.isNaN(e4m3[4]));
  const e5m2 = toFloat32(
    { dtype: 'F8_E5M2', shape: [4], data: Uint8Array.from([0x3c, 0x7b, 0x01, 0x7c]) },
    'f',
    't',
  );
  assert.deepEqual([...e5m2], [1, 57344, 2 ** -16, Number.POSITIVE_INFINITY]);
});
