import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import {
  decodeSafetensors,
  encodeSafetensors,
  openSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  SafetensorsFormatError,
  type SafetensorsTensor,
  writeSafetensors,
} from '../../src/model/checkpoint/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ascii = (s: string) => [...Buffer.from(s, 'utf8')];
const le64 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return [...b];
};
const f32le = (xs: number[]) => [...Buffer.from(new Float32Array(xs).buffer)];

/** A file from a literal header string (not padded unless the caller pads) and raw data bytes. */
function rawFile(header: string, data: number[] | Uint8Array = [], lengthOverride?: number): Uint8Array {
  const h = Buffer.from(header, 'utf8');
  return Uint8Array.from([...le64(lengthOverride ?? h.length), ...h, ...data]);
}

function expectFormatError(fn: () => unknown, pattern: RegExp, tensor?: string): SafetensorsFormatError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(
    caught instanceof SafetensorsFormatError,
    `expected SafetensorsFormatError, got ${String(caught)}`,
  );
  assert.match(caught.message, pattern);
  if (tensor !== undefined) assert.equal(caught.tensor, tensor);
  return caught;
}

describe('safetensors byte layout', () => {
  test('single F32 tensor matches a hand-built file (length prefix, space padding to 8, offsets)', () => {
    const out = encodeSafetensors({
      attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data: Float32Array.from([0, 1, 2, 3, 4, 5]) },
    });
    const json = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    assert.equal(json.length, 65);
    // 65 header bytes pad to 72 with seven spaces.
    const expected = [
      72,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      ...ascii(json),
      ...ascii('       '),
      ...f32le([0, 1, 2, 3, 4, 5]),
    ];
    assert.deepEqual([...out], expected);
    assert.equal((8 + 72) % 8, 0);
  });

  test('empty file, with and without metadata', () => {
    assert.deepEqual([...encodeSafetensors({})], [8, 0, 0, 0, 0, 0, 0, 0, ...ascii('{}      ')]);
    assert.deepEqual(
      [...encodeSafetensors({}, { framework: 'pt' })],
      [40, 0, 0, 0, 0, 0, 0, 0, ...ascii('{"__metadata__":{"framework":"pt"}}     ')],
    );
  });

  test('tensors are laid out by descending dtype alignment then name; metadata keys sorted', () => {
    const out = encodeSafetensors(
      {
        b: { dtype: 'F32', shape: [2], data: Float32Array.from([1, 2]) },
        c: { dtype: 'U8', shape: [3], data: Uint8Array.from([7, 8, 9]) },
        a: { dtype: 'F32', shape: [1], data: Float32Array.from([3]) },
        '10': { dtype: 'BF16', shape: [1], data: Uint16Array.from([0x3f80]) },
        d: { dtype: 'I64', shape: [], data: BigInt64Array.from([-1n]) },
      },
      { z: '1', a: '2' },
    );
    const json =
      '{"__metadata__":{"a":"2","z":"1"},' +
      '"d":{"dtype":"I64","shape":[],"data_offsets":[0,8]},' +
      '"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},' +
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]},' +
      '"10":{"dtype":"BF16","shape":[1],"data_offsets":[20,22]},' +
      '"c":{"dtype":"U8","shape":[3],"data_offsets":[22,25]}}';
    const padded = Math.ceil(json.length / 8) * 8;
    const data = [
      ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
      ...f32le([3]),
      ...f32le([1, 2]),
      ...[0x80, 0x3f],
      ...[7, 8, 9],
    ];
    assert.deepEqual([...out], [...le64(padded), ...ascii(json.padEnd(padded, ' ')), ...data]);
  });
});

describe('safetensors round trip', () => {
  const all: Record<string, SafetensorsTensor> = {
    bool: { dtype: 'BOOL', shape: [3], data: Uint8Array.from([1, 0, 1]) },
    u8: { dtype: 'U8', shape: [2, 2], data: Uint8Array.from([0, 1, 254, 255]) },
    i8: { dtype: 'I8', shape: [2], data: Int8Array.from([-128, 127]) },
    e4m3: { dtype: 'F8_E4M3', shape: [2], data: Uint8Array.from([0x38, 0x7e]) },
    e5m2: { dtype: 'F8_E5M2', shape: [2], data: Uint8Array.from([0x3c, 0x7b]) },
    i16: { dtype: 'I16', shape: [2], data: Int16Array.from([-32768, 32767]) },
    u16: { dtype: 'U16', shape: [1], data: Uint16Array.from([65535]) },
    f16: { dtype: 'F16', shape: [3], data: Uint16Array.from([0x3c00, 0xc000, 0x7bff]) },
    bf16: { dtype: 'BF16', shape: [1, 2], data: Uint16Array.from([0x3f80, 0x4049]) },
    i32: { dtype: 'I32', shape: [2], data: Int32Array.from([-2147483648, 2147483647]) },
    u32: { dtype: 'U32', shape: [1], data: Uint32Array.from([4294967295]) },
    f32: { dtype: 'F32', shape: [2, 3], data: Float32Array.from([0.5, -1.25, 3, 1e-30, -0, 65504]) },
    f64: { dtype: 'F64', shape: [2], data: Float64Array.from([Math.PI, -1e300]) },
    i64: { dtype: 'I64', shape: [2], data: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n]) },
    u64: { dtype: 'U64', shape: [1], data: BigUint64Array.from([2n ** 64n - 1n]) },
    scalar: { dtype: 'F32', shape: [], data: Float32Array.from([7]) },
    empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  };

  test('every dtype survives write + read (whole file, in memory, lazy by name) with aligned data', () => {
    const file = path.join(tmp, 'all.safetensors');
    writeSafetensors(file, all, { note: 'x' });
    const bytes = fs.readFileSync(file);
    assert.deepEqual([...bytes], [...encodeSafetensors(all, { note: 'x' })]);
    for (const decoded of [readSafetensors(file), decodeSafetensors(bytes, file)]) {
      assert.deepEqual(decoded.metadata, { note: 'x' });
      assert.deepEqual([...decoded.tensors.keys()].sort(), Object.keys(all).sort());
      for (const [name, t] of Object.entries(all)) {
        const got = decoded.tensors.get(name)!;
        assert.equal(got.dtype, t.dtype, name);
        assert.deepEqual(got.shape, t.shape, name);
        assert.equal(got.data.constructor, t.data.constructor, name);
        assert.deepEqual(got.data, t.data, name);
      }
    }
    const r = openSafetensors(file);
    try {
      assert.deepEqual(r.read('i64').data, all.i64!.data);
      assert.deepEqual(r.readFloat32('bf16').data, Float32Array.from([1, 3.140625]));
      assert.deepEqual(r.readFloat32('f64').data, Float32Array.from([Math.PI, Number.NEGATIVE_INFINITY]));
      assert.throws(() => r.readFloat32('i32'), /I32 is not a float type/);
      assert.throws(() => r.read('nope'), /no tensor named "nope"/);
    } finally {
      r.close();
    }
    const asF32 = readSafetensors(file, { float32: true }).tensors;
    assert.equal(asF32.get('f16')!.dtype, 'F32');
    assert.deepEqual(asF32.get('f16')!.data, Float32Array.from([1, -2, 65504]));
    assert.deepEqual(asF32.get('e4m3')!.data, Float32Array.from([1, 448]));
    assert.equal(asF32.get('i16')!.dtype, 'I16');
  });

  test('F16/BF16 written from Float32Array are rounded to nearest even', () => {
    const out = decodeSafetensors(
      encodeSafetensors({
        h: { dtype: 'F16', shape: [2], data: Float32Array.from([1, 0.1]) },
        b: { dtype: 'BF16', shape: [2], data: Float32Array.from([1.01171875, 1.00390625]) },
      }),
    );
    assert.deepEqual(out.tensors.get('h')!.data, Uint16Array.from([0x3c00, 0x2e66]));
    assert.deepEqual(out.tensors.get('b')!.data, Uint16Array.from([0x3f82, 0x3f80]));
  });

  test('readSafetensorsHeader reads only the header: offsets and sizes without loading data', () => {
    const file = path.join(tmp, 'header.safetensors');
    writeSafetensors(file, { w: { dtype: 'F32', shape: [1000, 100], data: new Float32Array(100_000) } });
    const h = readSafetensorsHeader(file);
    assert.equal(h.fileSize, 8 + h.headerLength + 400_000);
    assert.equal(h.dataStart % 8, 0);
    assert.deepEqual(h.tensors.get('w'), { dtype: 'F32', shape: [1000, 100], dataOffsets: [0, 400_000] });
  });

  test('a 3 GB (sparse) file: header and one tensor by name without reading the rest', () => {
    const file = path.join(tmp, 'huge.safetensors');
    const big = 750_000_000 * 4;
    const json = `{"big":{"dtype":"F32","shape":[750000000],"data_offsets":[0,${big}]},"small":{"dtype":"U8","shape":[4],"data_offsets":[${big},${big + 4}]}}`;
    const header = Buffer.from(json.padEnd(Math.ceil(json.length / 8) * 8, ' '));
    const fd = fs.openSync(file, 'w');
    try {
      fs.writeSync(fd, Uint8Array.from(le64(header.length)), 0, 8, 0);
      fs.writeSync(fd, header, 0, header.length, 8);
      // Only the last 4 bytes are written; the 3 GB before them is a hole that takes no disk or memory.
      fs.writeSync(fd, Uint8Array.from([1, 2, 3, 4]), 0, 4, 8 + header.length + big);
    } finally {
      fs.closeSync(fd);
    }
    const h = readSafetensorsHeader(file);
    assert.equal(h.fileSize, 8 + header.length + big + 4);
    assert.deepEqual(h.tensors.get('big')!.shape, [750_000_000]);
    const r = openSafetensors(file);
    try {
      assert.deepEqual(r.read('small').data, Uint8Array.from([1, 2, 3, 4]));
    } finally {
      r.close();
    }
    fs.rmSync(file);
  });

  test('atomic write replaces an existing file and leaves no temp file behind', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'atomic-'));
    const file = path.join(dir, 'x.safetensors');
    fs.writeFileSync(file, 'old contents');
    writeSafetensors(file, { a: { dtype: 'U8', shape: [1], data: Uint8Array.from([5]) } });
    assert.deepEqual(fs.readdirSync(dir), ['x.safetensors']);
    assert.deepEqual(readSafetensors(file).tensors.get('a')!.data, Uint8Array.from([5]));
    // A failed write (bad input) must leave the old file untouched.
    assert.throws(() =>
      writeSafetensors(file, { a: { dtype: 'F32', shape: [2], data: new Float32Array(3) } }),
    );
    assert.deepEqual(fs.readdirSync(dir), ['x.safetensors']);
    assert.deepEqual(readSafetensors(file).tensors.get('a')!.data, Uint8Array.from([5]));
  });

  test('writer rejects mismatched data, wrong array types and the reserved name', () => {
    expectFormatError(
      () => encodeSafetensors({ w: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } }),
      /shape \[2, 2\] has 4 elements but the data has 3/,
      'w',
    );
    expectFormatError(
      () => encodeSafetensors({ w: { dtype: 'I32', shape: [1], data: new Float32Array(1) } }),
      /I32 needs a Int32Array, got a Float32Array/,
      'w',
    );
    expectFormatError(
      () => encodeSafetensors({ __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } }),
      /reserved/,
    );
  });
});

describe('safetensors validation', () => {
  const good = () =>
    encodeSafetensors({
      a: { dtype: 'F32', shape: [2], data: Float32Array.from([1, 2]) },
      b: { dtype: 'F32', shape: [1], data: Float32Array.from([3]) },
    });

  test('truncated files name the file and, once the header is intact, the tensor', () => {
    const file = path.join(tmp, 'trunc.safetensors');
    const bytes = good();
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 2));
    const e = expectFormatError(
      () => readSafetensorsHeader(file),
      /data ends at byte 132 but the file has only 130 bytes \(truncated/,
      'b',
    );
    assert.equal(e.file, file);
    assert.ok(e.message.startsWith(file));
    fs.writeFileSync(file, bytes.subarray(0, 5));
    expectFormatError(() => readSafetensors(file), /file is 5 bytes/);
    fs.writeFileSync(file, bytes.subarray(0, 20));
    expectFormatError(() => readSafetensors(file), /header claims \d+ bytes but the file has only 12/);
  });

  test('corrupt headers', () => {
    expectFormatError(() => decodeSafetensors(rawFile('{"a": {"dtype": "F32",')), /not valid JSON/);
    expectFormatError(() => decodeSafetensors(rawFile('[1,2]   ')), /does not start with "\{"/);
    expectFormatError(() => decodeSafetensors(rawFile('{}', [], 200_000_000)), /exceeds 100000000 bytes/);
    expectFormatError(
      () => decodeSafetensors(Uint8Array.from([...le64(4), 0x7b, 0xff, 0xfe, 0x7d])),
      /UTF-8/,
    );
    expectFormatError(
      () => decodeSafetensors(rawFile('{"__metadata__":{"k":1}}')),
      /"__metadata__"."k" must be a string/,
    );
  });

  test('bad tensor entries name the tensor', () => {
    const entry = (name: string, body: string, data: number[]) =>
      decodeSafetensors(rawFile(`{"${name}":${body}}`, data));
    expectFormatError(
      () => entry('w', '{"dtype":"F7","shape":[1],"data_offsets":[0,4]}', [0, 0, 0, 0]),
      /unknown dtype "F7"/,
      'w',
    );
    expectFormatError(
      () => entry('w', '{"dtype":"F32","shape":[2],"data_offsets":[0,4]}', [0, 0, 0, 0]),
      /shape \[2\] x F32 \(4 bytes\) = 8 bytes, but data_offsets \[0, 4\] span 4/,
      'w',
    );
    expectFormatError(
      () => entry('w', '{"dtype":"F32","shape":[1],"data_offsets":[4,8]}', [0, 0, 0, 0, 0, 0, 0, 0]),
      /gap of 4/,
      'w',
    );
    expectFormatError(
      () => entry('w', '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}', [0, 0, 0, 0, 9]),
      /1 bytes after the last tensor/,
    );
    expectFormatError(
      () => entry('w', '{"dtype":"F32","shape":[1],"data_offsets":[4,0]}', [0, 0, 0, 0]),
      /0 <= begin <= end/,
      'w',
    );
    expectFormatError(
      () => entry('w', '{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}', [0, 0, 0, 0]),
      /non-negative integers/,
      'w',
    );
    expectFormatError(
      () =>
        decodeSafetensors(
          rawFile(
            '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
            new Array(8).fill(0),
          ),
        ),
      /overlap tensor "a"/,
      'b',
    );
    expectFormatError(
      () =>
        decodeSafetensors(
          rawFile('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', new Array(8).fill(0)),
        ),
      /data ends at byte/,
      'a',
    );
  });

  test('a header-only file with unpadded JSON and trailing-space padding both parse', () => {
    assert.equal(decodeSafetensors(rawFile('{}')).tensors.size, 0);
    const t = decodeSafetensors(rawFile('{"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}   ', [4, 5]));
    assert.deepEqual(t.tensors.get('x')!.data, Uint8Array.from([4, 5]));
  });
});
