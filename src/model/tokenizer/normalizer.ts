/**
 * SentencePiece's Normalizer::Normalize, byte for byte: user-defined symbols pass through untouched, the
 * precompiled charsmap rewrites the longest matching prefix, whitespace is trimmed and collapsed
 * (remove_extra_whitespaces), '▁' is prepended (add_dummy_prefix) and spaces become '▁' (escape_whitespaces).
 * It works on UTF-8 bytes because the charsmap and the Unigram lattice are defined over them.
 */
import { ByteTrie } from './byte-trie.js';
import { PrecompiledCharsmap } from './precompiled-charsmap.js';
import type { NormalizerSpec } from './tokenizer-spec.js';

const SPACE = 0x20;
const SPACE_SYMBOL = [0xe2, 0x96, 0x81]; // U+2581 '▁'

/** Length of the UTF-8 sequence a lead byte starts (SentencePiece's OneCharLen: 1 for stray bytes). */
export function utf8CharLen(lead: number): number {
  return lead < 0xc0 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

/** A growable byte buffer reused across calls. */
export class ByteSink {
  buf = new Uint8Array(256);
  length = 0;
  reset(): void {
    this.length = 0;
  }
  push(b: number): void {
    if (this.length === this.buf.length) this.grow(1);
    this.buf[this.length++] = b;
  }
  pushRange(src: Uint8Array, start: number, end: number): void {
    const n = end - start;
    if (this.length + n > this.buf.length) this.grow(n);
    this.buf.set(src.subarray(start, end), this.length);
    this.length += n;
  }
  private grow(extra: number): void {
    let cap = this.buf.length * 2;
    while (cap < this.length + extra) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
}

export class SpmNormalizer {
  private readonly charsmap: PrecompiledCharsmap | undefined;
  private readonly userDefined: ByteTrie | undefined;
  // NormalizePrefix result, kept in fields so the hot loop allocates nothing.
  private src: Uint8Array = new Uint8Array(0);
  private srcStart = 0;
  private srcEnd = 0;

  constructor(
    readonly spec: NormalizerSpec,
    userDefinedSymbols: readonly string[],
    source: string,
    field: string,
  ) {
    this.charsmap =
      spec.precompiledCharsmap.length > 0
        ? PrecompiledCharsmap.parse(spec.precompiledCharsmap, source, field)
        : undefined;
    if (userDefinedSymbols.length > 0) {
      const enc = new TextEncoder();
      this.userDefined = new ByteTrie(userDefinedSymbols.length * 4);
      for (const s of userDefinedSymbols) this.userDefined.insert(enc.encode(s), 1);
    }
  }

  /** Sets src/srcStart/srcEnd to the normalized form of the prefix at `pos`; returns the bytes consumed. */
  private normalizePrefix(input: Uint8Array, pos: number, end: number): number {
    if (this.userDefined) {
      const m = this.userDefined.longestPrefix(input, pos, end);
      if (m.length > 0) {
        this.src = input;
        this.srcStart = pos;
        this.srcEnd = pos + m.length;
        return m.length;
      }
    }
    if (this.charsmap) {
      const len = this.charsmap.match(input, pos, end);
      if (len > 0) {
        const [s, e] = this.charsmap.replacement();
        this.src = this.charsmap.bytes();
        this.srcStart = s;
        this.srcEnd = e;
        return len;
      }
    }
    // Input comes from TextEncoder, so it is valid UTF-8 and needs no U+FFFD substitution here.
    const len = Math.min(utf8CharLen(input[pos] as number), end - pos);
    this.src = input;
    this.srcStart = pos;
    this.srcEnd = pos + len;
    return len;
  }

  /**
   * Normalizes UTF-8 `input` into `out` (which is reset first). `dummyPrefix` says whether this segment gets
   * the leading '▁' (the caller resolves 'first' vs 'always').
   */
  normalizeInto(input: Uint8Array, dummyPrefix: boolean, out: ByteSink): void {
    out.reset();
    const { removeExtraWhitespaces, escapeWhitespaces } = this.spec;
    const end = input.length;
    let pos = 0;
    if (removeExtraWhitespaces) {
      while (pos < end) {
        const consumed = this.normalizePrefix(input, pos, end);
        if (!(this.srcEnd - this.srcStart === 1 && this.src[this.srcStart] === SPACE)) break;
        pos += consumed;
      }
    }
    if (pos >= end) return;
    const pushSpace = (): void => {
      if (escapeWhitespaces) for (const b of SPACE_SYMBOL) out.push(b);
      else out.push(SPACE);
    };
    if (dummyPrefix) pushSpace();
    let isPrevSpace = removeExtraWhitespaces;
    while (pos < end) {
      const consumed = this.normalizePrefix(input, pos, end);
      const src = this.src;
      let s = this.srcStart;
      const e = this.srcEnd;
      while (isPrevSpace && s < e && src[s] === SPACE) s++;
      if (s < e) {
        for (let i = s; i < e; i++) {
          const b = src[i] as number;
          if (b === SPACE && escapeWhitespaces) pushSpace();
          else out.push(b);
        }
        isPrevSpace = src[e - 1] === SPACE;
      }
      pos += consumed;
      if (!removeExtraWhitespaces) isPrevSpace = false;
    }
    if (removeExtraWhitespaces) {
      const buf = out.buf;
      if (escapeWhitespaces) {
        while (
          out.length >= 3 &&
          buf[out.length - 3] === 0xe2 &&
          buf[out.length - 2] === 0x96 &&
          buf[out.length - 1] === 0x81
        ) {
          out.length -= 3;
        }
      } else {
        while (out.length > 0 && buf[out.length - 1] === SPACE) out.length--;
      }
    }
  }
}
