/**
 * The bytes a tensor is stored and hashed as: raw little-endian float32, the same on every machine, so a digest
 * computed on one host verifies on another.
 */

import * as os from 'node:os';
import type { HostTensor } from '../model/tensor-map.js';
import { BankInputError } from './errors.js';
import { sha256Hex } from './manifest.js';

/** A tensor as the bank stores it: the host tensor type (model/tensor-map.ts). */
export type BankTensor = HostTensor;

const LITTLE_ENDIAN = os.endianness() === 'LE';

export function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function checkTensor(name: string, t: BankTensor, where: string): void {
  if (!name || name.length > 512)
    throw new BankInputError(`${where}: tensor name '${name}' must be 1-512 characters`);
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new BankInputError(`${where}: tensor '${name}' has an invalid shape ${JSON.stringify(t.shape)}`);
  }
  if (!(t.data instanceof Float32Array))
    throw new BankInputError(`${where}: tensor '${name}' data must be a Float32Array`);
  const n = elementCount(t.shape);
  if (t.data.length !== n) {
    throw new BankInputError(
      `${where}: tensor '${name}' has ${t.data.length} values but shape [${t.shape.join(', ')}] needs ${n}`,
    );
  }
}

/** Little-endian bytes of `data`; a view (no copy) on little-endian hosts. */
export function tensorBytes(data: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) dv.setFloat32(i * 4, data[i] as number, true);
  return out;
}

/** A fresh Float32Array from little-endian bytes (always a copy, so callers may keep or mutate it). */
export function bytesToFloat32(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.length / 4);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(i * 4, true);
  return out;
}

export function blobDigest(bytes: Uint8Array): string {
  return `sha256:${sha256Hex(bytes)}`;
}
