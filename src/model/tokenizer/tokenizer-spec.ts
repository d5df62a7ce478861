/**
 * Everything a tokenizer is, independent of the file it came from: spiece.model and tokenizer.json both
 * load into this, the encoder runs from it, and the tokenizer.json writer serializes it.
 */

/**
 * SentencePiece's piece types, plus `extra_id` for T5's sentinel tokens (`<extra_id_N>`), which
 * transformers appends after the SentencePiece vocabulary and which are matched verbatim in input text.
 */
export type PieceType = 'normal' | 'unknown' | 'control' | 'user_defined' | 'unused' | 'byte' | 'extra_id';

export interface VocabEntry {
  piece: string;
  /** Log probability (float32 in the model file); 0 for control, unknown and extra-id pieces. */
  score: number;
  type: PieceType;
}

/** How `<extra_id_N>` sentinels after a segment boundary get the dummy-prefix '▁' (tokenizers' prepend_scheme). */
export type PrependScheme = 'always' | 'first' | 'never';

export interface NormalizerSpec {
  /** The SentencePiece rule name (nmt_nfkc, nfkc, identity, ...) when known; informational. */
  name: string;
  /** Serialized Darts double-array + normalized-string blob; empty = no character rewriting. */
  precompiledCharsmap: Uint8Array;
  /** Put '▁' before the text (SentencePiece add_dummy_prefix); 'first' only before the first segment. */
  addDummyPrefix: PrependScheme;
  /** Drop leading/trailing whitespace and collapse runs of whitespace to one. */
  removeExtraWhitespaces: boolean;
  /** Write ' ' as '▁' (U+2581). */
  escapeWhitespaces: boolean;
}

/**
 * A tokenizer.json run as the `tokenizers` library runs it (its normalizers on strings, its Metaspace word
 * split, its float64 Viterbi), rather than as the SentencePiece model it may have been converted from. Set
 * when the file's normalizer is one SentencePiece cannot express, or when asked for; absent for spiece.model.
 */
export interface HfPipelineSpec {
  /** The file's `normalizer` and `pre_tokenizer` objects, verbatim: the encoder compiles them, the writer re-emits them. */
  normalizer: unknown;
  preTokenizer: unknown;
  /** A WhitespaceSplit pre-tokenizer comes before Metaspace. */
  whitespaceSplit: boolean;
  /** Metaspace `split`: each word that starts with '▁' is segmented on its own. */
  splitWords: boolean;
}

export interface TokenizerSpec {
  /** The full vocabulary in id order, extra ids included. */
  vocab: VocabEntry[];
  normalizer: NormalizerSpec;
  /** Unknown characters become their UTF-8 bytes as `<0xXX>` pieces instead of `<unk>`. */
  byteFallback: boolean;
  unkId: number;
  eosId: number;
  padId: number;
  /** -1 when the model has no beginning-of-sentence piece (T5 has none). */
  bosId: number;
  /** What `<unk>` decodes to (SentencePiece's unk_surface, ' ⁇ ' by default). */
  unkSurface: string;
  /** The file this came from, for messages. */
  source: string;
  /** Present when the tokenizers library's semantics apply (see HfPipelineSpec). */
  hf?: HfPipelineSpec;
}

export const SPACE_SYMBOL = '\u2581';
export const DEFAULT_UNK_SURFACE = ' \u2047 ';
export const EXTRA_ID_PATTERN = /^<extra_id_(\d+)>$/;
