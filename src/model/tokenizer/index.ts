export {
  TokenizerError,
  TokenizerFormatError,
  TokenizerNotFoundError,
  UnsupportedTokenizerError,
} from './errors.js';
export type { LoadTokenizerOptions } from './load-tokenizer.js';
export { loadTokenizer, TOKENIZER_FILES, writeTokenizerJson } from './load-tokenizer.js';
export { DEFAULT_EXTRA_IDS, parseSpieceModel } from './spiece-model.js';
export type { DecodeOptions, EncodeOptions } from './tokenizer.js';
export { Tokenizer } from './tokenizer.js';
export { parseTokenizerJson } from './tokenizer-json.js';
export type {
  NormalizerSpec,
  PieceType,
  PrependScheme,
  TokenizerSpec,
  VocabEntry,
} from './tokenizer-spec.js';
