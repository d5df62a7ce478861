/**
 * SentencePiece's Unigram segmentation (unigram::Model::EncodeOptimized): a Viterbi pass over the normalized
 * UTF-8 bytes that keeps, per end position, the best-scoring path. SentencePiece stores path scores as float32
 * but compares some sums in double; equal-looking paths are common (".." + "." vs "." + ".."), so the exact
 * same rounding is reproduced with Math.fround to pick the same path.
 */
import { ByteTrie } from './byte-trie.js';
import { utf8CharLen } from './normalizer.js';
import type { TokenizerSpec } from './tokenizer-spec.js';

const FLT_MAX = 3.4028234663852886e38;
const FLT_MIN = 1.1754943508222875e-38; // smallest normal float: SentencePiece's initial max_score_
const UNK_PENALTY = 10;

/**
 * 'sentencepiece' reproduces spm's float32 path scores; 'tokenizers' the Rust `tokenizers` Unigram, which adds
 * float64 scores and takes the unknown penalty from the lowest score of the whole vocabulary. The two break
 * ties between equal-scoring segmentations differently ("000" as "00"+"0" or "0"+"00").
 */
export type UnigramSemantics = 'sentencepiece' | 'tokenizers';

export class UnigramModel {
  private readonly trie: ByteTrie;
  private readonly scores: Float64Array;
  private readonly userDefined: Uint8Array;
  private readonly unkId: number;
  private readonly unkScore: number;
  private readonly maxScore: number;
  private readonly byteFallback: boolean;
  /** id of `<0xXX>` for each byte, or the unk id where the model lacks it (as SentencePiece's PieceToId). */
  private readonly byteIds: Int32Array;
  // Viterbi scratch, grown on demand.
  private best = new Float64Array(256);
  private startsAt = new Int32Array(256);
  private ids = new Int32Array(256);

  private readonly f32: boolean;

  constructor(spec: TokenizerSpec, semantics: UnigramSemantics = 'sentencepiece') {
    const f32 = semantics === 'sentencepiece';
    const round = f32 ? Math.fround : (x: number) => x;
    this.f32 = f32;
    const enc = new TextEncoder();
    const n = spec.vocab.length;
    this.scores = new Float64Array(n);
    this.userDefined = new Uint8Array(n);
    this.trie = new ByteTrie(n * 6);
    let minScore = FLT_MAX;
    let maxScore = FLT_MIN;
    this.byteIds = new Int32Array(256).fill(spec.unkId);
    spec.vocab.forEach((v, id) => {
      this.scores[id] = round(v.score);
      if (v.type === 'normal' || !f32) minScore = Math.min(minScore, round(v.score));
      if (v.type === 'normal') maxScore = Math.max(maxScore, Math.fround(v.score));
      // Only these types are matched against text; control/unknown/byte pieces are reserved ids.
      if (v.type === 'normal' || v.type === 'user_defined' || v.type === 'unused') {
        this.trie.insert(enc.encode(v.piece), id);
      }
      if (v.type === 'user_defined') this.userDefined[id] = 1;
      if (v.type === 'unused') this.userDefined[id] = 2;
      if (v.type === 'byte') {
        const m = /^<0x([0-9A-F]{2})>$/.exec(v.piece);
        if (m) this.byteIds[Number.parseInt(m[1] as string, 16)] = id;
      }
    });
    this.unkId = spec.unkId;
    this.unkScore = round(minScore - UNK_PENALTY);
    this.maxScore = maxScore;
    this.byteFallback = spec.byteFallback;
  }

  /** Appends the ids of normalized bytes buf[0, size) to `out`. */
  encode(buf: Uint8Array, size: number, out: number[]): void {
    if (size === 0) return;
    if (this.best.length < size + 1) {
      let cap = this.best.length;
      while (cap < size + 1) cap *= 2;
      this.best = new Float64Array(cap);
      this.startsAt = new Int32Array(cap);
      this.ids = new Int32Array(cap);
    }
    const best = this.best;
    const startsAt = this.startsAt;
    const ids = this.ids;
    startsAt.fill(-1, 0, size + 1);
    best[0] = 0;
    const trie = this.trie;
    const scores = this.scores;
    const kind = this.userDefined;
    const round = this.f32 ? Math.fround : (x: number) => x;

    for (let start = 0; start < size; ) {
      const base = best[start] as number;
      const mblen = Math.min(utf8CharLen(buf[start] as number), size - start);
      let hasSingleNode = false;
      let node = 0;
      for (let key = start; key < size; ) {
        node = trie.child(node, buf[key] as number);
        key++;
        if (node < 0) break;
        const id = trie.value(node);
        if (id < 0) continue;
        const k = kind[id] as number;
        if (k === 2) continue; // unused pieces are in the trie but never chosen
        const length = key - start;
        // SentencePiece's ternary makes every piece score a double (the user-defined bonus is a double), so
        // the sum is compared unrounded against the stored float: on a float tie the later start can win.
        const candidate =
          (k === 1 ? Math.fround(length * this.maxScore) - 0.1 : (scores[id] as number)) + base;
        if (startsAt[key] === -1 || candidate > (best[key] as number)) {
          best[key] = round(candidate);
          startsAt[key] = start;
          ids[key] = id;
        }
        if (!hasSingleNode && length === mblen) hasSingleNode = true;
      }
      if (!hasSingleNode) {
        const target = start + mblen;
        const candidate = round(this.unkScore + base);
        if (startsAt[target] === -1 || candidate > (best[target] as number)) {
          best[target] = candidate;
          startsAt[target] = start;
          ids[target] = this.unkId;
        }
      }
      start += mblen;
    }

    // Backtrack, then emit left to right.
    const first = out.length;
    const bounds: number[] = [];
    for (let end = size; end > 0; end = startsAt[end] as number) bounds.push(end);
    let prevUnk = false;
    for (let i = bounds.length - 1; i >= 0; i--) {
      const end = bounds[i] as number;
      const id = ids[end] as number;
      const isUnk = id === this.unkId;
      if (isUnk && this.byteFallback) {
        for (let b = startsAt[end] as number; b < end; b++)
          out.push(this.byteIds[buf[b] as number] as number);
      } else if (!(isUnk && prevUnk && out.length > first)) {
        // SentencePiece merges a run of unknown pieces into one <unk>.
        out.push(id);
      }
      prevUnk = isUnk;
    }
  }
}
