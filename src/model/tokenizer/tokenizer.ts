/**
 * The T5 tokenizer: SentencePiece-exact Unigram encoding plus transformers' T5 conventions (`</s>` appended,
 * `<extra_id_N>` sentinels after the SentencePiece vocabulary, matched verbatim in input text).
 *
 * Only `<extra_id_N>` is recognised in text. `</s>`, `<pad>` and `<unk>` written in the text are encoded as
 * the characters they are, as `spm_encode` does, so data cannot inject an end of sequence.
 */
import { ByteSink, SpmNormalizer } from './normalizer.js';
import { compileTextNormalizer, type TextNormalizer, WHITE_SPACE } from './text-normalizer.js';
import type { TokenizerSpec, VocabEntry } from './tokenizer-spec.js';
import { EXTRA_ID_PATTERN, SPACE_SYMBOL } from './tokenizer-spec.js';
import { UnigramModel } from './unigram-model.js';

const WHITESPACE_RUN = new RegExp(`[${WHITE_SPACE}]+`, 'u');
const BEFORE_SPACE_SYMBOL = /(?=\u2581)/u;

export interface EncodeOptions {
  /** Append `</s>` (default true, as T5 training and inference expect). */
  addEos?: boolean;
}

export interface DecodeOptions {
  /** Drop control pieces (`</s>`, `<pad>`) and `<extra_id_N>` sentinels (default true). */
  skipSpecial?: boolean;
}

const EXTRA_ID_IN_TEXT = /<extra_id_(\d+)>/g;

export class Tokenizer {
  readonly spec: TokenizerSpec;
  private readonly normalizer: SpmNormalizer;
  private readonly model: UnigramModel;
  private readonly pieceIds = new Map<string, number>();
  private readonly extraIdIds = new Map<number, number>();
  private readonly encoder = new TextEncoder();
  private readonly sink = new ByteSink();
  /** The tokenizers-library path (spec.hf): string normalizer, then Metaspace words, then float64 Viterbi. */
  private readonly hfNormalizer: TextNormalizer | undefined;

  constructor(spec: TokenizerSpec) {
    this.spec = spec;
    const userDefined: string[] = [];
    spec.vocab.forEach((v, id) => {
      if (!this.pieceIds.has(v.piece)) this.pieceIds.set(v.piece, id);
      if (v.type === 'user_defined') userDefined.push(v.piece);
      if (v.type === 'extra_id') {
        const m = EXTRA_ID_PATTERN.exec(v.piece);
        if (m) this.extraIdIds.set(Number(m[1]), id);
      }
    });
    this.normalizer = new SpmNormalizer(spec.normalizer, userDefined, spec.source, 'precompiled_charsmap');
    if (spec.hf) {
      this.hfNormalizer = compileTextNormalizer(spec.hf.normalizer, spec.source);
      this.model = new UnigramModel(spec, 'tokenizers');
    } else {
      this.model = new UnigramModel(spec);
    }
  }

  /** Number of ids, `<extra_id_N>` included (32100 for the original T5; its embedding is padded to 32128). */
  get vocabSize(): number {
    return this.spec.vocab.length;
  }
  get eosId(): number {
    return this.spec.eosId;
  }
  get padId(): number {
    return this.spec.padId;
  }
  get unkId(): number {
    return this.spec.unkId;
  }
  /** How many `<extra_id_N>` sentinels the vocabulary has. */
  get extraIds(): number {
    return this.extraIdIds.size;
  }

  /** The id of `<extra_id_n>`; throws when the vocabulary has fewer sentinels. */
  extraId(n: number): number {
    const id = this.extraIdIds.get(n);
    if (id === undefined) {
      throw new RangeError(`<extra_id_${n}> is not in the vocabulary (it has ${this.extraIds} extra ids)`);
    }
    return id;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    let pos = 0;
    if (this.extraIdIds.size > 0 && text.includes('<extra_id_')) {
      for (const m of text.matchAll(EXTRA_ID_IN_TEXT)) {
        const id = this.extraIdIds.get(Number(m[1]));
        if (id === undefined || String(Number(m[1])) !== m[1]) continue;
        this.encodeSegment(text.slice(pos, m.index), pos === 0, ids);
        ids.push(id);
        pos = m.index + m[0].length;
      }
    }
    this.encodeSegment(pos === 0 ? text : text.slice(pos), pos === 0, ids);
    if (options.addEos ?? true) ids.push(this.spec.eosId);
    return ids;
  }

  encodeBatch(texts: readonly string[], options: EncodeOptions = {}): number[][] {
    return texts.map((t) => this.encode(t, options));
  }

  /** The SentencePiece-normalized text ('▁' for spaces, dummy prefix included), as the model segments it. */
  normalize(text: string): string {
    if (this.hfNormalizer) return this.hfWords(text, true).join('');
    this.normalizer.normalizeInto(
      this.encoder.encode(text),
      this.spec.normalizer.addDummyPrefix !== 'never',
      this.sink,
    );
    return new TextDecoder().decode(this.sink.buf.subarray(0, this.sink.length));
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const skipSpecial = options.skipSpecial ?? true;
    let text = '';
    let bytes: number[] = [];
    const flushBytes = (): void => {
      if (bytes.length > 0) text += new TextDecoder().decode(Uint8Array.from(bytes));
      bytes = [];
    };
    for (const id of ids) {
      const v = this.entry(id);
      if (v.type === 'byte') {
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(v.piece);
        if (m) {
          bytes.push(Number.parseInt(m[1] as string, 16));
          continue;
        }
      }
      flushBytes();
      if (v.type === 'control' || v.type === 'extra_id') {
        if (!skipSpecial) text += v.piece;
      } else if (v.type === 'unknown') {
        text += this.spec.unkSurface;
      } else {
        text += v.piece;
      }
    }
    flushBytes();
    text = text.replaceAll(SPACE_SYMBOL, ' ');
    if (this.spec.normalizer.addDummyPrefix !== 'never' && text.startsWith(' ')) text = text.slice(1);
    return text;
  }

  idToPiece(id: number): string {
    return this.entry(id).piece;
  }

  /** The id of a vocabulary piece, or undefined (SentencePiece would answer the unk id). */
  pieceToId(piece: string): number | undefined {
    return this.pieceIds.get(piece);
  }

  private entry(id: number): VocabEntry {
    const v = Number.isInteger(id) ? this.spec.vocab[id] : undefined;
    if (v === undefined) {
      throw new RangeError(`token id ${id} is outside the vocabulary (0..${this.spec.vocab.length - 1})`);
    }
    return v;
  }

  /**
   * The tokenizers library's pre-tokenization of one segment: normalize, split on whitespace
   * (WhitespaceSplit), turn ' ' into '▁', prepend '▁' per the scheme, split before each '▁' (Metaspace split).
   */
  private hfWords(text: string, first: boolean): string[] {
    const hf = this.spec.hf as NonNullable<TokenizerSpec['hf']>;
    const normalized = (this.hfNormalizer as TextNormalizer)(text);
    const scheme = this.spec.normalizer.addDummyPrefix;
    const words: string[] = [];
    const pieces = hf.whitespaceSplit ? normalized.split(WHITESPACE_RUN) : [normalized];
    // 'first' prepends only to a word that starts at offset 0 of the original text. The library tracks
    // alignments; here the first character counts as kept when normalizing it alone leaves something
    // (Strip or Nmt deleting a leading space or control character moves the start past offset 0).
    const firstCp = text.codePointAt(0);
    const startKept =
      first &&
      scheme === 'first' &&
      firstCp !== undefined &&
      (this.hfNormalizer as TextNormalizer)(String.fromCodePoint(firstCp)) !== '';
    pieces.forEach((piece, i) => {
      if (piece === '') return;
      let w = piece.replaceAll(' ', SPACE_SYMBOL);
      const atStart = i === 0 && startKept;
      if (!w.startsWith(SPACE_SYMBOL) && (scheme === 'always' || (scheme === 'first' && atStart))) {
        w = SPACE_SYMBOL + w;
      }
      if (hf.splitWords) {
        for (const part of w.split(BEFORE_SPACE_SYMBOL)) if (part !== '') words.push(part);
      } else {
        words.push(w);
      }
    });
    return words;
  }

  private encodeSegment(text: string, first: boolean, out: number[]): void {
    if (text === '') return;
    if (this.hfNormalizer) {
      for (const word of this.hfWords(text, first)) {
        const bytes = this.encoder.encode(word);
        this.model.encode(bytes, bytes.length, out);
      }
      return;
    }
    const scheme = this.spec.normalizer.addDummyPrefix;
    const dummy = scheme === 'always' || (scheme === 'first' && first);
    this.normalizer.normalizeInto(this.encoder.encode(text), dummy, this.sink);
    this.model.encode(this.sink.buf, this.sink.length, out);
  }
}
