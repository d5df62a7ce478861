/**
 * SentencePiece's `ModelProto`, the format of `spiece.model`, read with the code generated from
 * proto/sentencepiece/sentencepiece_model.proto (src/generated/sentencepiece-model.ts): protobufjs decodes, this
 * file turns the message into the plain fields the tokenizer uses (proto2 defaults filled in) and a damaged file
 * into a TokenizerFormatError naming the byte where decoding stopped.
 */
import protobuf from 'protobufjs';
import {
  ModelProto,
  ModelProto_SentencePiece_Type,
  NormalizerSpec,
  TrainerSpec,
  TrainerSpec_ModelType,
} from '../../generated/sentencepiece-model.js';
import { TokenizerFormatError } from './errors.js';

/** SentencePiece.Type numbers on the wire. */
export const SPM_PIECE_TYPE = ModelProto_SentencePiece_Type;
/** TrainerSpec.ModelType numbers on the wire. */
export const SPM_MODEL_TYPE = TrainerSpec_ModelType;

export interface SpmPieceProto {
  piece: string;
  score: number;
  type: number;
}

export interface SpmTrainerSpecProto {
  modelType: number;
  vocabSize: number;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  unkPiece: string;
  bosPiece: string;
  eosPiece: string;
  padPiece: string;
  unkSurface: string;
  byteFallback: boolean;
  treatWhitespaceAsSuffix: boolean;
}

export interface SpmNormalizerSpecProto {
  name: string;
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
  normalizationRuleTsv: string;
}

export interface SpmModelProto {
  pieces: SpmPieceProto[];
  trainerSpec: SpmTrainerSpecProto;
  normalizerSpec: SpmNormalizerSpecProto;
  /** True when the file has a trainer_spec / normalizer_spec message at all (false = defaults). */
  hasTrainerSpec: boolean;
  hasNormalizerSpec: boolean;
}

/**
 * A decoded message field by field: protobufjs puts each proto2 default on the message's prototype, so a field the
 * file leaves out reads as its default here.
 */
function trainerSpec(t: TrainerSpec): SpmTrainerSpecProto {
  return {
    modelType: t.modelType!,
    vocabSize: t.vocabSize!,
    unkId: t.unkId!,
    bosId: t.bosId!,
    eosId: t.eosId!,
    padId: t.padId!,
    unkPiece: t.unkPiece!,
    bosPiece: t.bosPiece!,
    eosPiece: t.eosPiece!,
    padPiece: t.padPiece!,
    unkSurface: t.unkSurface!,
    byteFallback: t.byteFallback!,
    treatWhitespaceAsSuffix: t.treatWhitespaceAsSuffix!,
  };
}

function normalizerSpec(n: NormalizerSpec): SpmNormalizerSpecProto {
  return {
    name: n.name!,
    // A copy: the decoded field is a view into the whole file's buffer.
    precompiledCharsmap: new Uint8Array(n.precompiledCharsmap ?? []),
    addDummyPrefix: n.addDummyPrefix!,
    removeExtraWhitespaces: n.removeExtraWhitespaces!,
    escapeWhitespaces: n.escapeWhitespaces!,
    normalizationRuleTsv: n.normalizationRuleTsv!,
  };
}

/** The defaults of each spec, for a file without one: an empty message decodes to nothing but defaults. */
const EMPTY = new Uint8Array(0);

/** Decodes the bytes of a `spiece.model`. `source` names the file in errors. */
export function decodeSpmModelProto(buf: Uint8Array, source: string): SpmModelProto {
  const head = new TextDecoder().decode(buf.subarray(0, 64));
  if (head.startsWith('version https://git-lfs')) {
    throw new TokenizerFormatError(
      `${source} is a Git LFS pointer, not the model itself: run \`git lfs pull\` in that repository ` +
        'or download the file again.',
      source,
    );
  }
  const reader = protobuf.Reader.create(buf);
  let m: ModelProto;
  try {
    m = ModelProto.decode(reader) as ModelProto;
  } catch (cause) {
    throw new TokenizerFormatError(
      `${source}: not a valid SentencePiece model: ${(cause as Error).message} at byte ${reader.pos}. ` +
        'The file is damaged or not a spiece.model; download it again.',
      source,
      undefined,
      { cause },
    );
  }
  const trainer = m.trainerSpec ?? (TrainerSpec.decode(EMPTY) as TrainerSpec);
  const normalizer = m.normalizerSpec ?? (NormalizerSpec.decode(EMPTY) as NormalizerSpec);
  return {
    pieces: (m.pieces ?? []).map((p) => ({ piece: p.piece!, score: p.score!, type: p.type! })),
    trainerSpec: trainerSpec(trainer),
    normalizerSpec: normalizerSpec(normalizer),
    hasTrainerSpec: m.trainerSpec != null,
    hasNormalizerSpec: m.normalizerSpec != null,
  };
}
