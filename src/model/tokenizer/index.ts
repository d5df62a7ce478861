export {
  TokenizerError,
  TokenizerFormatError,
  TokenizerNotFoundError,
  UnsupportedTokenizerError,
} from './errors.js';
export type { LoadTokenizerOptions } from './load-tokenizer.js';
export { loadTokenizer, TOKENIZER_FILES, writeTokenizerJson } from './load-tokenizer.js';
export { DEFAULT_EXTRA_IDS, parseSpieceModel } from './spiece-model.js';
export type { TextNormalizer } from './text-normalizer.js';
export { compileTextNormalizer, TEXT_NORMALIZERS } from './text-normalizer.js';
export type { DecodeOptions, EncodeOptions } from './tokenizer.js';
export { Tokenizer } from './tokenizer.js';
export type { TokenizerJsonSemantics } from './tokenizer-json.js';
export { parseTokenizerJson } from './tokenizer-json.js';
export type {
  HfPipelineSpec,
  NormalizerSpec,
  PieceType,
  PrependScheme,
  TokenizerSpec,
  VocabEntry,
} from './tokenizer-spec.js';
