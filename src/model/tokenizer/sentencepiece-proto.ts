/**
 * Decoder for SentencePiece's `ModelProto` (sentencepiece_model.proto, proto2), the format of `spiece.model`.
 * Hand-written so that a damaged file fails with the byte offset and field that broke, and so that only the
 * fields the encoder needs are materialized. Unknown fields are skipped, as proto2 requires.
 */
import { TokenizerFormatError } from './errors.js';

/** SentencePiece.Type numbers on the wire. */
export const SPM_PIECE_TYPE = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;
/** TrainerSpec.ModelType numbers on the wire. */
export const SPM_MODEL_TYPE = { UNIGRAM: 1, BPE: 2, WORD: 3, CHAR: 4 } as const;

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

// Defaults are the proto2 [default = ...] values of sentencepiece_model.proto.
function defaultTrainerSpec(): SpmTrainerSpecProto {
  return {
    modelType: SPM_MODEL_TYPE.UNIGRAM,
    vocabSize: 8000,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkPiece: '<unk>',
    bosPiece: '<s>',
    eosPiece: '</s>',
    padPiece: '<pad>',
    unkSurface: ' \u2047 ',
    byteFallback: false,
    treatWhitespaceAsSuffix: false,
  };
}

function defaultNormalizerSpec(): SpmNormalizerSpecProto {
  return {
    name: '',
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
    normalizationRuleTsv: '',
  };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Minimal protobuf wire reader over one message's bytes. */
class WireReader {
  pos: number;
  private readonly view: DataView;
  constructor(
    readonly buf: Uint8Array,
    readonly start: number,
    readonly end: number,
    readonly source: string,
    readonly path: string,
  ) {
    this.pos = start;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  fail(what: string, field?: string): never {
    const where = field ? `${this.path}.${field}` : this.path;
    throw new TokenizerFormatError(
      `${this.source}: not a valid SentencePiece model: ${what} at byte ${this.pos} (in ${where}). ` +
        'The file is damaged or not a spiece.model; download it again.',
      this.source,
      where,
    );
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /** Reads a varint; returns its low 32 bits as a signed int (int32/enum/bool semantics). */
  varint(field?: string): number {
    let lo = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      if (this.pos >= this.end) this.fail('truncated varint', field);
      const b = this.buf[this.pos++] as number;
      if (shift < 32) lo |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return lo | 0;
    }
    return this.fail('varint longer than 10 bytes', field);
  }

  float32(field?: string): number {
    if (this.pos + 4 > this.end) this.fail('truncated float', field);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** Returns [start, end) of a length-delimited payload and moves past it. */
  bytes(field?: string): [number, number] {
    const len = this.varint(field);
    if (len < 0 || this.pos + len > this.end)
      this.fail(`length ${len} runs past the end of the message`, field);
    const s = this.pos;
    this.pos += len;
    return [s, this.pos];
  }

  string(field?: string): string {
    const [s, e] = this.bytes(field);
    try {
      return utf8.decode(this.buf.subarray(s, e));
    } catch (cause) {
      this.pos = s;
      return this.fail(`invalid UTF-8 in a string field (${String(cause)})`, field);
    }
  }

  sub(field: string): WireReader {
    const [s, e] = this.bytes(field);
    return new WireReader(this.buf, s, e, this.source, `${this.path}.${field}`);
  }

  skip(wireType: number, field: number): void {
    switch (wireType) {
      case 0:
        this.varint(`field ${field}`);
        return;
      case 1:
        if (this.pos + 8 > this.end) this.fail('truncated fixed64', `field ${field}`);
        this.pos += 8;
        return;
      case 2:
        this.bytes(`field ${field}`);
        return;
      case 5:
        if (this.pos + 4 > this.end) this.fail('truncated fixed32', `field ${field}`);
        this.pos += 4;
        return;
      default:
        this.fail(`unsupported wire type ${wireType} for field ${field}`);
    }
  }

  /** Reads a tag; returns [fieldNumber, wireType]. */
  tag(): [number, number] {
    const t = this.varint('tag') >>> 0;
    const field = t >>> 3;
    if (field === 0) this.fail('field number 0');
    return [field, t & 7];
  }

  expect(wireType: number, expected: number, field: string): void {
    if (wireType !== expected) this.fail(`wire type ${wireType} where ${expected} was expected`, field);
  }
}

function readPiece(r: WireReader): SpmPieceProto {
  const p: SpmPieceProto = { piece: '', score: 0, type: SPM_PIECE_TYPE.NORMAL };
  while (!r.done()) {
    const [f, wt] = r.tag();
    if (f === 1) {
      r.expect(wt, 2, 'piece');
      p.piece = r.string('piece');
    } else if (f === 2) {
      r.expect(wt, 5, 'score');
      p.score = r.float32('score');
    } else if (f === 3) {
      r.expect(wt, 0, 'type');
      p.type = r.varint('type');
    } else r.skip(wt, f);
  }
  return p;
}

function readTrainerSpec(r: WireReader): SpmTrainerSpecProto {
  const t = defaultTrainerSpec();
  const ints: Record<number, keyof SpmTrainerSpecProto> = {
    3: 'modelType',
    4: 'vocabSize',
    40: 'unkId',
    41: 'bosId',
    42: 'eosId',
    43: 'padId',
  };
  const strings: Record<number, keyof SpmTrainerSpecProto> = {
    44: 'unkSurface',
    45: 'unkPiece',
    46: 'bosPiece',
    47: 'eosPiece',
    48: 'padPiece',
  };
  const bools: Record<number, keyof SpmTrainerSpecProto> = {
    24: 'treatWhitespaceAsSuffix',
    35: 'byteFallback',
  };
  while (!r.done()) {
    const [f, wt] = r.tag();
    const i = ints[f];
    const s = strings[f];
    const b = bools[f];
    if (i) {
      r.expect(wt, 0, i);
      (t as unknown as Record<string, number>)[i] = r.varint(i);
    } else if (s) {
      r.expect(wt, 2, s);
      (t as unknown as Record<string, string>)[s] = r.string(s);
    } else if (b) {
      r.expect(wt, 0, b);
      (t as unknown as Record<string, boolean>)[b] = r.varint(b) !== 0;
    } else r.skip(wt, f);
  }
  return t;
}

function readNormalizerSpec(r: WireReader): SpmNormalizerSpecProto {
  const n = defaultNormalizerSpec();
  while (!r.done()) {
    const [f, wt] = r.tag();
    if (f === 1) {
      r.expect(wt, 2, 'name');
      n.name = r.string('name');
    } else if (f === 2) {
      r.expect(wt, 2, 'precompiled_charsmap');
      const [s, e] = r.bytes('precompiled_charsmap');
      n.precompiledCharsmap = r.buf.slice(s, e);
    } else if (f === 3) {
      r.expect(wt, 0, 'add_dummy_prefix');
      n.addDummyPrefix = r.varint('add_dummy_prefix') !== 0;
    } else if (f === 4) {
      r.expect(wt, 0, 'remove_extra_whitespaces');
      n.removeExtraWhitespaces = r.varint('remove_extra_whitespaces') !== 0;
    } else if (f === 5) {
      r.expect(wt, 0, 'escape_whitespaces');
      n.escapeWhitespaces = r.varint('escape_whitespaces') !== 0;
    } else if (f === 6) {
      r.expect(wt, 2, 'normalization_rule_tsv');
      n.normalizationRuleTsv = r.string('normalization_rule_tsv');
    } else r.skip(wt, f);
  }
  return n;
}

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
  const r = new WireReader(buf, 0, buf.length, source, 'ModelProto');
  const model: SpmModelProto = {
    pieces: [],
    trainerSpec: defaultTrainerSpec(),
    normalizerSpec: defaultNormalizerSpec(),
    hasTrainerSpec: false,
    hasNormalizerSpec: false,
  };
  while (!r.done()) {
    const [f, wt] = r.tag();
    if (f === 1) {
      r.expect(wt, 2, 'pieces');
      model.pieces.push(readPiece(r.sub(`pieces[${model.pieces.length}]`)));
    } else if (f === 2) {
      r.expect(wt, 2, 'trainer_spec');
      model.trainerSpec = readTrainerSpec(r.sub('trainer_spec'));
      model.hasTrainerSpec = true;
    } else if (f === 3) {
      r.expect(wt, 2, 'normalizer_spec');
      model.normalizerSpec = readNormalizerSpec(r.sub('normalizer_spec'));
      model.hasNormalizerSpec = true;
    } else r.skip(wt, f);
  }
  return model;
}
