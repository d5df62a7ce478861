/**
 * Reader and writer for the safetensors format: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * (`{"__metadata__": {..}, "<name>": {"dtype", "shape", "data_offsets": [begin, end]}}`, padded with spaces to
 * a multiple of 8), then the tensor bytes, little-endian and C-ordered. Files we write are byte-identical to what
 * the reference implementation (`safetensors.torch.save_file`) writes for the same tensors and metadata.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  bf16ToFloat32,
  f8e4m3ToFloat32,
  f8e5m2ToFloat32,
  f16ToFloat32,
  float32ToBf16,
  float32ToF16,
} from './float-convert.js';

/**
 * Dtypes in the reference implementation's enum order (ascending alignment); the writer lays tensors out in
 * descending order of this rank, then by name, which keeps every tensor aligned to its element size.
 */
const DTYPE_INFO = {
  BOOL: { bytes: 1, rank: 0 },
  U8: { bytes: 1, rank: 1 },
  I8: { bytes: 1, rank: 2 },
  F8_E5M2: { bytes: 1, rank: 3 },
  F8_E4M3: { bytes: 1, rank: 4 },
  I16: { bytes: 2, rank: 5 },
  U16: { bytes: 2, rank: 6 },
  F16: { bytes: 2, rank: 7 },
  BF16: { bytes: 2, rank: 8 },
  I32: { bytes: 4, rank: 9 },
  U32: { bytes: 4, rank: 10 },
  F32: { bytes: 4, rank: 11 },
  F64: { bytes: 8, rank: 12 },
  I64: { bytes: 8, rank: 13 },
  U64: { bytes: 8, rank: 14 },
} as const;

export type SafetensorsDtype = keyof typeof DTYPE_INFO;

/** Dtypes `toFloat32` can widen (or narrow, for F64) to float32. */
export const FLOAT_DTYPES: ReadonlySet<SafetensorsDtype> = new Set([
  'F32',
  'F16',
  'BF16',
  'F64',
  'F8_E4M3',
  'F8_E5M2',
]);

export type TensorData =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

/**
 * One tensor in memory. Element types: BOOL/U8/F8_* Uint8Array, I8 Int8Array, I16 Int16Array, U16 Uint16Array,
 * F16/BF16 Uint16Array of raw bits, I32 Int32Array, U32 Uint32Array, F32 Float32Array, F64 Float64Array,
 * I64 BigInt64Array, U64 BigUint64Array. When writing, F16/BF16 also accept a Float32Array (rounded to nearest even).
 */
export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: TensorData;
}

export interface SafetensorsTensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Relative to the start of the data section, as in the file. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  /** N: the JSON header's length in bytes, padding included. */
  headerLength: number;
  /** Absolute file offset of the data section (8 + N). */
  dataStart: number;
  metadata: Record<string, string>;
  /** In data-offset order. */
  tensors: Map<string, SafetensorsTensorInfo>;
}

/** The bytes are not a valid safetensors file (or a tensor in it is unusable as asked). */
export class SafetensorsFormatError extends Error {
  override name = 'SafetensorsFormatError';
  constructor(
    message: string,
    readonly file: string,
    readonly tensor?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// The reference reader's limit; a larger N means this is not a safetensors file (or a hostile one).
export const MAX_HEADER_BYTES = 100_000_000;

export function isSafetensorsDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && Object.hasOwn(DTYPE_INFO, s);
}

function assertLittleEndianHost(): void {
  // Typed arrays use host byte order and safetensors is little-endian; every platform Node ships on is LE.
  if (os.endianness() !== 'LE') throw new Error('safetensors I/O needs a little-endian host');
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Validates and decodes a header. `headerBytes` holds at least the first 8 + N bytes of a file of `fileSize`
 * bytes; `file` names the source in errors.
 */
export function parseSafetensorsHeader(
  headerBytes: Uint8Array,
  fileSize: number,
  file: string,
): SafetensorsHeader {
  const fail = (msg: string, tensor?: string, cause?: unknown): never => {
    throw new SafetensorsFormatError(
      `${file}: ${tensor === undefined ? '' : `tensor "${tensor}": `}${msg}`,
      file,
      tensor,
      cause === undefined ? undefined : { cause },
    );
  };
  if (fileSize < 8 || headerBytes.length < 8) {
    fail(
      `file is ${fileSize} bytes; a safetensors file starts with an 8-byte header length (truncated download?)`,
    );
  }
  const n64 = new DataView(headerBytes.buffer, headerBytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    fail(
      `header length ${n64} exceeds ${MAX_HEADER_BYTES} bytes: not a safetensors file, or its first bytes are corrupt`,
    );
  }
  const n = Number(n64);
  if (n < 2) fail(`header length ${n} is too small for a JSON object`);
  if (8 + n > fileSize) {
    fail(
      `header claims ${n} bytes but the file has only ${fileSize - 8} after the length prefix (truncated file?)`,
    );
  }
  if (headerBytes.length < 8 + n)
    fail(`internal: only ${headerBytes.length} header bytes were read, need ${8 + n}`);
  let text: string;
  try {
    text = utf8.decode(headerBytes.subarray(8, 8 + n));
  } catch (e) {
    return fail('header is not valid UTF-8', undefined, e);
  }
  if (!text.startsWith('{'))
    fail(`header does not start with "{" (starts with ${JSON.stringify(text.slice(0, 16))})`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`, undefined, e);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('header JSON is not an object');

  const metadata: Record<string, string> = {};
  const entries: [string, SafetensorsTensorInfo][] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null) continue;
      if (typeof value !== 'object' || Array.isArray(value))
        fail('"__metadata__" must be an object of strings');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`"__metadata__"."${k}" must be a string, got ${typeof v}`);
        metadata[k] = v as string;
      }
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      fail('entry is not an object', name);
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (!isSafetensorsDtype(dtype)) {
      fail(`unknown dtype ${JSON.stringify(dtype)}; supported: ${Object.keys(DTYPE_INFO).join(', ')}`, name);
    }
    if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
      fail(`shape ${JSON.stringify(shape)} is not an array of non-negative integers`, name);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[1] < offsets[0]
    ) {
      fail(`data_offsets ${JSON.stringify(offsets)} must be [begin, end] with 0 <= begin <= end`, name);
    }
    const [begin, end] = offsets as [number, number];
    entries.push([
      name,
      { dtype: dtype as SafetensorsDtype, shape: shape as number[], dataOffsets: [begin, end] },
    ]);
  }

  entries.sort(([, a], [, b]) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  const dataStart = 8 + n;
  const dataLength = fileSize - dataStart;
  let expected = 0;
  let previous: string | undefined;
  for (const [name, info] of entries) {
    const [begin, end] = info.dataOffsets;
    if (begin < expected) {
      fail(`data_offsets [${begin}, ${end}] overlap tensor "${previous}" which ends at ${expected}`, name);
    }
    if (begin > expected) {
      fail(
        `data_offsets [${begin}, ${end}] leave a gap of ${begin - expected} unreferenced bytes before it`,
        name,
      );
    }
    const count = numel(info.shape);
    const bytes = count * DTYPE_INFO[info.dtype].bytes;
    if (!Number.isSafeInteger(bytes) || bytes !== end - begin) {
      fail(
        `shape [${info.shape.join(', ')}] x ${info.dtype} (${DTYPE_INFO[info.dtype].bytes} bytes) = ${bytes} bytes, ` +
          `but data_offsets [${begin}, ${end}] span ${end - begin}`,
        name,
      );
    }
    if (end > dataLength) {
      fail(
        `data ends at byte ${dataStart + end} but the file has only ${fileSize} bytes (truncated file? re-download it)`,
        name,
      );
    }
    expected = end;
    previous = name;
  }
  if (expected !== dataLength) {
    fail(
      `the file has ${dataLength - expected} bytes after the last tensor's data that no tensor references`,
    );
  }
  return { file, fileSize, headerLength: n, dataStart, metadata, tensors: new Map(entries) };
}

function readFully(fd: number, target: Uint8Array, position: number, file: string, tensor?: string): void {
  let done = 0;
  while (done < target.length) {
    const got = fs.readSync(fd, target, done, target.length - done, position + done);
    if (got === 0) {
      throw new SafetensorsFormatError(
        `${file}: ${tensor === undefined ? '' : `tensor "${tensor}": `}unexpected end of file at byte ${position + done} ` +
          '(was the file truncated after the header was read?)',
        file,
        tensor,
      );
    }
    done += got;
  }
}

function readHeaderFromFd(fd: number, file: string): SafetensorsHeader {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 8) return parseSafetensorsHeader(new Uint8Array(0), fileSize, file);
  const prefix = new Uint8Array(8);
  readFully(fd, prefix, 0, file);
  const n64 = new DataView(prefix.buffer).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES) || 8 + Number(n64) > fileSize)
    return parseSafetensorsHeader(prefix, fileSize, file);
  const head = new Uint8Array(8 + Number(n64));
  head.set(prefix);
  readFully(fd, head.subarray(8), 8, file);
  return parseSafetensorsHeader(head, fileSize, file);
}

/** Reads and validates only the header (8 + N bytes), however large the file is. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = fs.openSync(file, 'r');
  try {
    return readHeaderFromFd(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}

/** Wraps raw little-endian bytes (own buffer, offset 0, so aligned) in the dtype's typed array. */
function typedFromBytes(dtype: SafetensorsDtype, buf: ArrayBuffer): TensorData {
  switch (dtype) {
    case 'BOOL':
    case 'U8':
    case 'F8_E4M3':
    case 'F8_E5M2':
      return new Uint8Array(buf);
    case 'I8':
      return new Int8Array(buf);
    case 'I16':
      return new Int16Array(buf);
    case 'U16':
    case 'F16':
    case 'BF16':
      return new Uint16Array(buf);
    case 'I32':
      return new Int32Array(buf);
    case 'U32':
      return new Uint32Array(buf);
    case 'F32':
      return new Float32Array(buf);
    case 'F64':
      return new Float64Array(buf);
    case 'I64':
      return new BigInt64Array(buf);
    case 'U64':
      return new BigUint64Array(buf);
  }
}

/**
 * The tensor's values as float32. F32 data is returned as is (not copied); F64 is rounded, F16/BF16/F8 widened
 * exactly. Integer dtypes are an error: a checkpoint weight stored as integers is not something to guess about.
 */
export function toFloat32(t: SafetensorsTensor, file: string, name: string): Float32Array {
  switch (t.dtype) {
    case 'F32':
      return t.data as Float32Array;
    case 'F64':
      return Float32Array.from(t.data as Float64Array);
    case 'F16':
      return f16ToFloat32(t.data as Uint16Array);
    case 'BF16':
      return bf16ToFloat32(t.data as Uint16Array);
    case 'F8_E4M3':
      return f8e4m3ToFloat32(t.data as Uint8Array);
    case 'F8_E5M2':
      return f8e5m2ToFloat32(t.data as Uint8Array);
    default:
      throw new SafetensorsFormatError(
        `${file}: tensor "${name}": dtype ${t.dtype} is not a float type and cannot be read as float32`,
        file,
        name,
      );
  }
}

/**
 * An open safetensors file whose tensors are read on demand with positioned reads, so a multi-gigabyte
 * checkpoint never has to sit in memory twice. Call `close()` when done.
 */
export class SafetensorsReader {
  private fd: number | undefined;
  private constructor(
    fd: number,
    readonly header: SafetensorsHeader,
  ) {
    this.fd = fd;
  }

  static open(file: string): SafetensorsReader {
    assertLittleEndianHost();
    const fd = fs.openSync(file, 'r');
    try {
      return new SafetensorsReader(fd, readHeaderFromFd(fd, file));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  get file(): string {
    return this.header.file;
  }

  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): SafetensorsTensorInfo {
    const info = this.header.tensors.get(name);
    if (info === undefined) {
      throw new SafetensorsFormatError(
        `${this.file}: no tensor named "${name}" in this file`,
        this.file,
        name,
      );
    }
    return info;
  }

  read(name: string): SafetensorsTensor {
    if (this.fd === undefined) throw new Error(`${this.file}: reader is closed`);
    const info = this.info(name);
    const [begin, end] = info.dataOffsets;
    const buf = new ArrayBuffer(end - begin);
    readFully(this.fd, new Uint8Array(buf), this.header.dataStart + begin, this.file, name);
    return { dtype: info.dtype, shape: [...info.shape], data: typedFromBytes(info.dtype, buf) };
  }

  readFloat32(name: string): { shape: number[]; data: Float32Array } {
    const t = this.read(name);
    return { shape: t.shape, data: toFloat32(t, this.file, name) };
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

export function openSafetensors(file: string): SafetensorsReader {
  return SafetensorsReader.open(file);
}

export interface SafetensorsContents {
  metadata: Record<string, string>;
  tensors: Map<string, SafetensorsTensor>;
}

/** Reads every tensor of a file. With `float32: true` float dtypes come back as F32 Float32Arrays. */
export function readSafetensors(file: string, opts: { float32?: boolean } = {}): SafetensorsContents {
  const r = SafetensorsReader.open(file);
  try {
    const tensors = new Map<string, SafetensorsTensor>();
    for (const name of r.names()) {
      const t = r.read(name);
      tensors.set(
        name,
        opts.float32 && FLOAT_DTYPES.has(t.dtype)
          ? { dtype: 'F32', shape: t.shape, data: toFloat32(t, file, name) }
          : t,
      );
    }
    return { metadata: r.header.metadata, tensors };
  } finally {
    r.close();
  }
}

/** Decodes a whole file already in memory; `source` names it in errors. */
export function decodeSafetensors(bytes: Uint8Array, source = '<buffer>'): SafetensorsContents {
  assertLittleEndianHost();
  const header = parseSafetensorsHeader(bytes, bytes.length, source);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, info] of header.tensors) {
    const [begin, end] = info.dataOffsets;
    // Copy into a fresh ArrayBuffer, which also aligns the data for its typed array. Uint8Array's slice, not
    // Buffer's: Buffer#slice returns a view into a shared pool.
    const copy = Uint8Array.prototype.slice.call(bytes, header.dataStart + begin, header.dataStart + end);
    tensors.set(name, {
      dtype: info.dtype,
      shape: [...info.shape],
      data: typedFromBytes(info.dtype, copy.buffer),
    });
  }
  return { metadata: header.metadata, tensors };
}

const EXPECTED_ARRAY: Record<SafetensorsDtype, string> = {
  BOOL: 'Uint8Array',
  U8: 'Uint8Array',
  F8_E4M3: 'Uint8Array',
  F8_E5M2: 'Uint8Array',
  I8: 'Int8Array',
  I16: 'Int16Array',
  U16: 'Uint16Array',
  F16: 'Uint16Array',
  BF16: 'Uint16Array',
  I32: 'Int32Array',
  U32: 'Uint32Array',
  F32: 'Float32Array',
  F64: 'Float64Array',
  I64: 'BigInt64Array',
  U64: 'BigUint64Array',
};

interface PreparedTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  bytes: Uint8Array;
}

interface Prepared {
  header: Uint8Array;
  tensors: PreparedTensor[];
  dataLength: number;
}

function prepare(
  tensors: Record<string, SafetensorsTensor> | Map<string, SafetensorsTensor>,
  metadata: Record<string, string> | undefined,
  target: string,
): Prepared {
  assertLittleEndianHost();
  const fail = (msg: string, tensor?: string): never => {
    throw new SafetensorsFormatError(
      `${target}: ${tensor === undefined ? '' : `tensor "${tensor}": `}${msg}`,
      target,
      tensor,
    );
  };
  const list: PreparedTensor[] = [];
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  for (const [name, t] of entries) {
    if (name === '__metadata__') fail('"__metadata__" is reserved and cannot name a tensor');
    if (!isSafetensorsDtype(t.dtype)) fail(`unknown dtype ${JSON.stringify(t.dtype)}`, name);
    if (!Array.isArray(t.shape) || !t.shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
      fail(`shape ${JSON.stringify(t.shape)} is not an array of non-negative integers`, name);
    }
    let data: TensorData = t.data;
    if ((t.dtype === 'F16' || t.dtype === 'BF16') && data instanceof Float32Array) {
      data = t.dtype === 'F16' ? float32ToF16(data) : float32ToBf16(data);
    }
    const ctor = (data as { constructor: { name: string } }).constructor.name;
    // Buffer is a Uint8Array subclass and is fine wherever Uint8Array is.
    const ok =
      ctor === EXPECTED_ARRAY[t.dtype] ||
      (EXPECTED_ARRAY[t.dtype] === 'Uint8Array' && data instanceof Uint8Array);
    if (!ok) fail(`dtype ${t.dtype} needs a ${EXPECTED_ARRAY[t.dtype]}, got a ${ctor}`, name);
    const count = numel(t.shape);
    if (data.length !== count) {
      fail(`shape [${t.shape.join(', ')}] has ${count} elements but the data has ${data.length}`, name);
    }
    list.push({
      name,
      dtype: t.dtype,
      shape: [...t.shape],
      bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
  }
  list.sort(
    (a, b) =>
      DTYPE_INFO[b.dtype].rank - DTYPE_INFO[a.dtype].rank || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  // Built by hand rather than with one JSON.stringify: JS objects put integer-like keys ("0", "12") first,
  // which would break the offset order the reference writer uses.
  const parts: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort();
    for (const k of keys) if (typeof metadata[k] !== 'string') fail(`metadata "${k}" must be a string`);
    parts.push(
      `"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`,
    );
  }
  let offset = 0;
  for (const t of list) {
    const end = offset + t.bytes.length;
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const header = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  return { header, tensors: list, dataLength: offset };
}

/** The complete file as bytes (for small files and tests; `writeSafetensors` streams instead). */
export function encodeSafetensors(
  tensors: Record<string, SafetensorsTensor> | Map<string, SafetensorsTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const p = prepare(tensors, metadata, '<buffer>');
  const out = new Uint8Array(p.header.length + p.dataLength);
  out.set(p.header);
  let at = p.header.length;
  for (const t of p.tensors) {
    out.set(t.bytes, at);
    at += t.bytes.length;
  }
  return out;
}

/**
 * Writes `file` atomically: into a temp file beside it, fsynced, then renamed over the target, so readers
 * never see a half-written checkpoint and a crash leaves the old file intact.
 */
export function writeSafetensors(
  file: string,
  tensors: Record<string, SafetensorsTensor> | Map<string, SafetensorsTensor>,
  metadata?: Record<string, string>,
): void {
  const p = prepare(tensors, metadata, file);
  writeFileAtomic(file, (fd) => {
    writeAll(fd, p.header);
    for (const t of p.tensors) writeAll(fd, t.bytes);
  });
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
}

/** Runs `write` on a temp file in the target's folder, fsyncs it, renames it into place and fsyncs the folder. */
export function writeFileAtomic(file: string, write: (fd: number) => void): void {
  const dir = path.dirname(file);
  const tmp = path.join(
    dir,
    `.${path.basename(file)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`,
  );
  const fd = fs.openSync(tmp, 'wx');
  try {
    try {
      write(fd);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir);
}

function fsyncDir(dir: string): void {
  // Makes the rename durable; some platforms (Windows) cannot open a directory, where this is best effort.
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
