/**
 * The `tokenizers` library's normalizers (the `normalizer` object of a tokenizer.json), run on JavaScript
 * strings with the library's semantics, so a file whose normalizer SentencePiece cannot express (NFKC,
 * Lowercase, a general Replace, Nmt...) still gives the ids Python gives. Each step maps string -> string.
 */
import { UnsupportedTokenizerError } from './errors.js';
import { PrecompiledCharsmap } from './precompiled-charsmap.js';

export type TextNormalizer = (text: string) => string;

type Obj = Record<string, unknown>;

// Rust's char::is_whitespace (Unicode White_Space), which Strip and WhitespaceSplit use. JavaScript's \s
// differs (it includes U+FEFF and lacks U+0085), so the set is spelled out.
export const WHITE_SPACE =
  '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const LEADING_WS = new RegExp(`^[${WHITE_SPACE}]+`, 'u');
const TRAILING_WS = new RegExp(`[${WHITE_SPACE}]+$`, 'u');
const MARKS = /\p{M}/gu;

/** Nmt: drops ASCII/C1 control characters and maps other whitespace-like code points to ' '. */
function nmt(text: string): string {
  let out = '';
  for (const ch of text) {
    const c = ch.codePointAt(0) as number;
    if (
      (c >= 0x01 && c <= 0x08) ||
      c === 0x0b ||
      (c >= 0x0e && c <= 0x1f) ||
      c === 0x7f ||
      c === 0x8f ||
      c === 0x9f
    )
      continue;
    if (
      c === 0x09 ||
      c === 0x0a ||
      c === 0x0c ||
      c === 0x0d ||
      c === 0x1680 ||
      (c >= 0x200b && c <= 0x200f) ||
      c === 0x2028 ||
      c === 0x2029 ||
      c === 0x2581 ||
      c === 0xfeff ||
      c === 0xfffd
    ) {
      out += ' ';
      continue;
    }
    out += ch;
  }
  return out;
}

/** Lowercase one code point at a time: no final-sigma context rule, as Rust's per-char to_lowercase. */
function lowercase(text: string): string {
  let out = '';
  for (const ch of text) out += ch.toLowerCase();
  return out;
}

let graphemes: Intl.Segmenter | undefined;

/**
 * `tokenizers`' Precompiled normalizer, which is not SentencePiece's: it walks extended grapheme clusters,
 * replaces a whole cluster shorter than 6 UTF-8 bytes by the rule of the SHORTEST charsmap key that
 * prefixes it, and otherwise applies the same shortest-key rule to each code point of the cluster.
 */
export function precompiledNormalizer(charsmap: PrecompiledCharsmap): TextNormalizer {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const blob = charsmap.bytes();
  const transform = (chunk: string): string | undefined => {
    const b = enc.encode(chunk);
    const start = charsmap.shortestMatch(b, 0, b.length);
    if (start < 0) return undefined;
    let end = blob.indexOf(0, start);
    if (end < 0) end = blob.length;
    return dec.decode(blob.subarray(Math.min(start, blob.length), end));
  };
  return (text) => {
    graphemes ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' });
    let out = '';
    for (const { segment } of graphemes.segment(text)) {
      if (enc.encode(segment).length < 6) {
        const t = transform(segment);
        if (t !== undefined) {
          out += t;
          continue;
        }
      }
      for (const ch of segment) out += transform(ch) ?? ch;
    }
    return out;
  };
}

export const TEXT_NORMALIZERS = [
  'NFC',
  'NFD',
  'NFKC',
  'NFKD',
  'Lowercase',
  'Strip',
  'StripAccents',
  'Replace',
  'Prepend',
  'Nmt',
  'Precompiled',
  'Sequence',
] as const;

/**
 * Compiles a tokenizer.json `normalizer` object (null = none). `source` names the file and `field` the JSON
 * path in errors; a normalizer this does not implement is an UnsupportedTokenizerError naming both.
 */
export function compileTextNormalizer(node: unknown, source: string, field = 'normalizer'): TextNormalizer {
  if (node === null || node === undefined) return (t) => t;
  const unsupported = (what: string): never => {
    throw new UnsupportedTokenizerError(
      `${source}: ${field} ${what}; supported normalizers are ${TEXT_NORMALIZERS.join(', ')}. ` +
        'Use the checkpoint\u2019s spiece.model, or a tokenizer.json without it.',
      source,
      field,
    );
  };
  if (typeof node !== 'object' || Array.isArray(node)) return unsupported('is not an object');
  const n = node as Obj;
  switch (n.type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = n.type;
      return (t) => t.normalize(form);
    }
    case 'Lowercase':
      return lowercase;
    case 'Nmt':
      return nmt;
    case 'StripAccents':
      return (t) => t.replace(MARKS, '');
    case 'Strip': {
      // The library writes strip_left/strip_right; older hand-written files use left/right.
      const left = (n.strip_left ?? n.left ?? true) === true;
      const right = (n.strip_right ?? n.right ?? true) === true;
      return (t) => {
        let s = t;
        if (left) s = s.replace(LEADING_WS, '');
        if (right) s = s.replace(TRAILING_WS, '');
        return s;
      };
    }
    case 'Prepend': {
      if (typeof n.prepend !== 'string') return unsupported('Prepend has no string "prepend"');
      const p = n.prepend;
      return (t) => (t === '' ? t : p + t);
    }
    case 'Replace': {
      const pattern = n.pattern as Obj | undefined;
      const content = n.content;
      if (typeof content !== 'string') return unsupported('Replace has no string "content"');
      if (pattern && typeof pattern.String === 'string') {
        const s = pattern.String;
        return (t) => (s === '' ? t : t.replaceAll(s, content));
      }
      if (pattern && typeof pattern.Regex === 'string') {
        let re: RegExp;
        try {
          re = new RegExp(pattern.Regex, 'gu');
        } catch (cause) {
          throw new UnsupportedTokenizerError(
            `${source}: ${field} Replace pattern ${JSON.stringify(pattern.Regex)} is not a regular expression ` +
              `JavaScript can run (${(cause as Error).message})`,
            source,
            field,
            { cause },
          );
        }
        // The replacement is literal text, as in the library: no $1 expansion.
        return (t) => t.replace(re, () => content);
      }
      return unsupported('Replace has neither pattern.String nor pattern.Regex');
    }
    case 'Precompiled': {
      const b64 = n.precompiled_charsmap;
      if (b64 === null || b64 === undefined || b64 === '') return (t) => t;
      if (typeof b64 !== 'string') return unsupported('Precompiled has a non-string precompiled_charsmap');
      const bytes = new Uint8Array(Buffer.from(b64, 'base64'));
      return precompiledNormalizer(PrecompiledCharsmap.parse(bytes, source, `${field}.precompiled_charsmap`));
    }
    case 'Sequence': {
      if (!Array.isArray(n.normalizers)) return unsupported('Sequence has no "normalizers" array');
      const steps = n.normalizers.map((c, i) =>
        compileTextNormalizer(c, source, `${field}.normalizers[${i}]`),
      );
      return (t) => steps.reduce((s, f) => f(s), t);
    }
    default:
      return unsupported(`${JSON.stringify(n.type ?? null)} is not supported`);
  }
}
