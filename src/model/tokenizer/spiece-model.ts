/**
 * Turns a decoded `spiece.model` into a TokenizerSpec the way transformers' T5Tokenizer sees it: the
 * SentencePiece pieces in file order, then `extraIds` sentinels `<extra_id_{extraIds-1}>` .. `<extra_id_0>`
 * (so `<extra_id_0>` has the highest id).
 */
import { TokenizerFormatError, UnsupportedTokenizerError } from './errors.js';
import {
  decodeSpmModelProto,
  SPM_MODEL_TYPE,
  SPM_PIECE_TYPE,
  type SpmModelProto,
} from './sentencepiece-proto.js';
import type { PieceType, TokenizerSpec, VocabEntry } from './tokenizer-spec.js';

export const DEFAULT_EXTRA_IDS = 100;

const TYPE_NAMES: Record<number, PieceType> = {
  [SPM_PIECE_TYPE.NORMAL]: 'normal',
  [SPM_PIECE_TYPE.UNKNOWN]: 'unknown',
  [SPM_PIECE_TYPE.CONTROL]: 'control',
  [SPM_PIECE_TYPE.USER_DEFINED]: 'user_defined',
  [SPM_PIECE_TYPE.UNUSED]: 'unused',
  [SPM_PIECE_TYPE.BYTE]: 'byte',
};

const MODEL_TYPE_NAMES: Record<number, string> = { 1: 'Unigram', 2: 'BPE', 3: 'Word', 4: 'Char' };

/** Validates a decoded model and builds the spec. */
export function spieceModelToSpec(
  model: SpmModelProto,
  source: string,
  extraIds = DEFAULT_EXTRA_IDS,
): TokenizerSpec {
  const fail = (msg: string, field?: string): never => {
    throw new TokenizerFormatError(`${source}: ${msg}`, source, field);
  };
  if (model.pieces.length === 0) fail('the model has no pieces (is this really a spiece.model?)', 'pieces');
  const t = model.trainerSpec;
  if (t.modelType !== SPM_MODEL_TYPE.UNIGRAM) {
    throw new UnsupportedTokenizerError(
      `${source}: SentencePiece model type is ${MODEL_TYPE_NAMES[t.modelType] ?? `#${t.modelType}`}; ` +
        'only Unigram models (the T5 family) are supported.',
      source,
      'trainer_spec.model_type',
    );
  }
  if (t.treatWhitespaceAsSuffix) {
    throw new UnsupportedTokenizerError(
      `${source}: treat_whitespace_as_suffix=true is not supported (T5 models use prefix '▁').`,
      source,
      'trainer_spec.treat_whitespace_as_suffix',
    );
  }
  if (
    model.normalizerSpec.normalizationRuleTsv !== '' &&
    model.normalizerSpec.precompiledCharsmap.length === 0
  ) {
    throw new UnsupportedTokenizerError(
      `${source}: the normalizer uses an uncompiled rule TSV; only precompiled charsmaps are supported.`,
      source,
      'normalizer_spec.normalization_rule_tsv',
    );
  }
  if (!Number.isInteger(extraIds) || extraIds < 0) {
    throw new RangeError(`extraIds must be a non-negative integer, got ${extraIds}`);
  }

  const vocab: VocabEntry[] = [];
  const seen = new Map<string, number>();
  let unkId = -1;
  model.pieces.forEach((p, i) => {
    const type = TYPE_NAMES[p.type];
    if (type === undefined) fail(`piece ${i} ('${p.piece}') has unknown type ${p.type}`, `pieces[${i}].type`);
    if (p.piece === '') fail(`piece ${i} is empty`, `pieces[${i}].piece`);
    const prev = seen.get(p.piece);
    if (prev !== undefined)
      fail(`piece '${p.piece}' is defined twice (ids ${prev} and ${i})`, `pieces[${i}].piece`);
    seen.set(p.piece, i);
    if (type === 'unknown') {
      if (unkId >= 0) fail(`two unknown pieces (ids ${unkId} and ${i})`, `pieces[${i}].type`);
      unkId = i;
    }
    if (type === 'byte' && !t.byteFallback) {
      fail(`piece ${i} ('${p.piece}') is a BYTE piece but byte_fallback is off`, `pieces[${i}].type`);
    }
    vocab.push({ piece: p.piece, score: p.score, type: type as PieceType });
  });
  if (unkId < 0) fail('the model defines no unknown (<unk>) piece', 'pieces');

  // SentencePiece resolves eos/pad/bos by piece text (trainer_spec.*_piece), not by the *_id fields.
  const controlId = (piece: string): number => {
    const id = seen.get(piece);
    return id !== undefined && vocab[id]?.type === 'control' ? id : -1;
  };
  const eosId = controlId(t.eosPiece);
  const padId = controlId(t.padPiece);
  if (eosId < 0) fail(`no control piece '${t.eosPiece}' (eos); T5 needs one`, 'trainer_spec.eos_piece');
  if (padId < 0) {
    fail(
      `no control piece '${t.padPiece}' (pad); T5 needs one (train with --pad_id=0)`,
      'trainer_spec.pad_piece',
    );
  }

  for (let n = extraIds - 1; n >= 0; n--) {
    const piece = `<extra_id_${n}>`;
    if (seen.has(piece)) fail(`'${piece}' is already a SentencePiece piece; load with extraIds: 0`, 'pieces');
    vocab.push({ piece, score: 0, type: 'extra_id' });
  }

  const ns = model.normalizerSpec;
  return {
    vocab,
    normalizer: {
      name: ns.name,
      precompiledCharsmap: ns.precompiledCharsmap,
      addDummyPrefix: ns.addDummyPrefix ? 'always' : 'never',
      removeExtraWhitespaces: ns.removeExtraWhitespaces,
      escapeWhitespaces: ns.escapeWhitespaces,
    },
    byteFallback: t.byteFallback,
    unkId,
    eosId,
    padId,
    bosId: controlId(t.bosPiece),
    unkSurface: t.unkSurface,
    source,
  };
}

/** Decodes and validates the bytes of a spiece.model. */
export function parseSpieceModel(
  buf: Uint8Array,
  source: string,
  extraIds = DEFAULT_EXTRA_IDS,
): TokenizerSpec {
  return spieceModelToSpec(decodeSpmModelProto(buf, source), source, extraIds);
}
