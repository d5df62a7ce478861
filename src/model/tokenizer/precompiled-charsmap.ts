/**
 * SentencePiece's precompiled normalization rules (normalizer_spec.precompiled_charsmap, and tokenizers'
 * `Precompiled` normalizer, which carries the same bytes in base64).
 *
 * Layout: uint32 little-endian N, then N bytes of a Darts-clone double-array trie keyed by UTF-8 input
 * sequences, then a blob of NUL-terminated UTF-8 replacement strings; a trie value is an offset into that blob.
 * Normalization replaces the longest matching prefix of the input by its string.
 */
import { TokenizerFormatError } from './errors.js';

export class PrecompiledCharsmap {
  private readonly units: Uint32Array;
  private readonly blob: Uint8Array;
  /** Blob offset -> end of its NUL-terminated string, filled lazily. */
  private readonly ends = new Map<number, number>();

  private constructor(units: Uint32Array, blob: Uint8Array) {
    this.units = units;
    this.blob = blob;
  }

  /** Parses the serialized charsmap; `source` and `field` locate it in errors. */
  static parse(bytes: Uint8Array, source: string, field: string): PrecompiledCharsmap {
    const fail = (what: string): never => {
      throw new TokenizerFormatError(
        `${source}: ${field} is not a valid precompiled charsmap: ${what}. The file is damaged; download it again.`,
        source,
        field,
      );
    };
    if (bytes.length <= 4) fail(`only ${bytes.length} bytes`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const trieSize = view.getUint32(0, true);
    if (trieSize === 0 || trieSize % 4 !== 0 || trieSize > bytes.length - 4) {
      fail(`trie size ${trieSize} does not fit in ${bytes.length} bytes`);
    }
    const units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < units.length; i++) units[i] = view.getUint32(4 + i * 4, true);
    return new PrecompiledCharsmap(units, bytes.slice(4 + trieSize));
  }

  /** Byte length of the longest rule matching buf[pos, end), or 0; the replacement is then `replacement()`. */
  match(buf: Uint8Array, pos: number, end: number): number {
    const a = this.units;
    const n = a.length;
    // Darts-clone unit fields: bit 8 has_leaf, bits 0-7 + 31 label, value = low 31 bits,
    // offset = (unit >> 10) << ((unit & 512) >> 6).
    let unit = a[0] as number;
    let nodePos = (unit >>> 10) << ((unit & 512) >>> 6);
    let best = 0;
    for (let i = pos; i < end; i++) {
      const c = buf[i] as number;
      nodePos ^= c;
      if (nodePos >= n) break;
      unit = a[nodePos] as number;
      if ((unit & 0x800000ff) !== c) break;
      nodePos ^= (unit >>> 10) << ((unit & 512) >>> 6);
      if ((unit >>> 8) & 1) {
        if (nodePos >= n) break;
        best = i - pos + 1;
        this.lastValue = (a[nodePos] as number) & 0x7fffffff;
      }
    }
    return best;
  }

  private lastValue = 0;

  /**
   * Blob offset of the replacement of the SHORTEST rule prefixing buf[pos, end), or -1: what the `tokenizers`
   * library's Precompiled normalizer uses (it takes the first common-prefix result), unlike SentencePiece.
   */
  shortestMatch(buf: Uint8Array, pos: number, end: number): number {
    const a = this.units;
    const n = a.length;
    let unit = a[0] as number;
    let nodePos = (unit >>> 10) << ((unit & 512) >>> 6);
    for (let i = pos; i < end; i++) {
      const c = buf[i] as number;
      nodePos ^= c;
      if (nodePos >= n) return -1;
      unit = a[nodePos] as number;
      if ((unit & 0x800000ff) !== c) return -1;
      nodePos ^= (unit >>> 10) << ((unit & 512) >>> 6);
      if ((unit >>> 8) & 1) return nodePos >= n ? -1 : (a[nodePos] as number) & 0x7fffffff;
    }
    return -1;
  }

  /** [start, end) in `bytes()` of the replacement for the last successful `match`. */
  replacement(): [number, number] {
    const start = this.lastValue;
    let end = this.ends.get(start);
    if (end === undefined) {
      end = this.blob.indexOf(0, start);
      if (end < 0 || start >= this.blob.length) end = start; // out-of-range value: treat as deletion
      this.ends.set(start, end);
    }
    return [start, end];
  }

  bytes(): Uint8Array {
    return this.blob;
  }
}
