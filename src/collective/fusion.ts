/**
 * Tensor fusion (Horovod's term): the named gradient tensors a step touched, packed into one buffer so a step
 * costs one all-reduce instead of one per tensor.
 *
 * The layout is a pure function of the planned names and their lengths: names sorted by UTF-16 code units (not
 * localeCompare, whose order depends on the machine's locale), each tensor at the running offset. Every worker
 * derives the same layout from the same step plan without negotiating. Only planned names are included: a
 * tensor the plan does not name is left out (sparse steps reduce less). A planned tensor this worker did not
 * touch contributes zeros, which needs its length (`lengths`).
 */
import { FusionError } from './errors.js';

export interface FusionLayout {
  readonly names: readonly string[];
  readonly offsets: readonly number[];
  readonly lengths: readonly number[];
  readonly totalElements: number;
}

export type NamedTensors = ReadonlyMap<string, Float32Array> | Readonly<Record<string, Float32Array>>;
export type NamedLengths = ReadonlyMap<string, number> | Readonly<Record<string, number>>;

function lookup<T>(
  m: ReadonlyMap<string, T> | Readonly<Record<string, T>> | undefined,
  name: string,
): T | undefined {
  if (!m) return undefined;
  if (m instanceof Map) return m.get(name);
  return Object.hasOwn(m, name) ? (m as Readonly<Record<string, T>>)[name] : undefined;
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The layout for `plannedNames` (deduplicated and sorted) given each tensor's element count. */
export function planLayout(
  plannedNames: Iterable<string>,
  lengths: (name: string) => number | undefined,
): FusionLayout {
  const names = [...new Set(plannedNames)].sort(byCodeUnits);
  const offsets: number[] = [];
  const lens: number[] = [];
  let total = 0;
  for (const name of names) {
    const len = lengths(name);
    if (len === undefined) {
      throw new FusionError(
        `planned tensor '${name}' was not given and its length is unknown: pass it, or its length in options.lengths`,
      );
    }
    if (!Number.isSafeInteger(len) || len < 0)
      throw new FusionError(`tensor '${name}' has invalid length ${len}`);
    offsets.push(total);
    lens.push(len);
    total += len;
  }
  return { names, offsets, lengths: lens, totalElements: total };
}

export interface FusedBuffer {
  readonly buffer: Float32Array;
  readonly layout: FusionLayout;
}

/**
 * Packs the planned tensors into one new buffer. Tensors not in the plan are ignored; planned tensors missing
 * from `tensors` are zeros of length `options.lengths[name]`.
 */
export function fuse(
  tensors: NamedTensors,
  plannedNames: Iterable<string>,
  options: { lengths?: NamedLengths } = {},
): FusedBuffer {
  const layout = planLayout(plannedNames, (name) => {
    const t = lookup(tensors, name);
    const expected = lookup(options.lengths, name);
    if (t && expected !== undefined && t.length !== expected) {
      throw new FusionError(`tensor '${name}' has ${t.length} elements but options.lengths says ${expected}`);
    }
    return t?.length ?? expected;
  });
  const buffer = new Float32Array(layout.totalElements);
  layout.names.forEach((name, i) => {
    const t = lookup(tensors, name);
    if (t) buffer.set(t, layout.offsets[i]);
  });
  return { buffer, layout };
}

/** Splits a fused buffer back into named tensors: views into `buffer` (no copy), in layout order. */
export function unfuse(buffer: Float32Array, layout: FusionLayout): Map<string, Float32Array> {
  if (buffer.length !== layout.totalElements) {
    throw new FusionError(
      `buffer has ${buffer.length} elements but the layout needs ${layout.totalElements}`,
    );
  }
  const out = new Map<string, Float32Array>();
  layout.names.forEach((name, i) => {
    const off = layout.offsets[i]!;
    out.set(name, buffer.subarray(off, off + layout.lengths[i]!));
  });
  return out;
}
