import * as tf from '@tensorflow/tfjs-core';

import '../../backend/gradients.js';
import { expectedT5TensorShapes, type T5Config } from '../t5-config.js';
import { relu } from './activations.js';
import { attentionCore, headsToRows, multiHeadAttention, rowsToHeads } from './attention-core.js';
import { tokenNll } from './cross-entropy.js';
import { type DropoutPlan, type StackDropout, stackDropout } from './dropout.js';
import { assertShape, ShapeMismatchError } from './errors.js';
import { FrozenLinear } from './frozen-linear.js';
import { nativeKernelsAvailable, uploadNow } from './native-kernels.js';
import { relativePositionBuckets } from './relative-position.js';
import { residualAdd } from './residual.js';
import { frozenRmsNorm } from './rms-norm.js';
import { gatherRowsTrainable } from './trainable-embedding.js';
import { TrainableLinear } from './trainable-linear.js';

/** A weight as read from a checkpoint: Hugging Face name, shape and float32 data. */
export interface RawTensor {
  shape: number[];
  data: Float32Array;
}

/** Added to attention scores at masked positions. exp(-1e9) underflows to exactly 0 in float32. */
const MASK_VALUE = -1e9;
const POSITION_CACHE_LIMIT = 64;

/** FrozenLinear normally; TrainableLinear when the backbone itself is trained (pretraining). */
type Linear = FrozenLinear | TrainableLinear;

export interface T5ModelOptions {
  /**
   * Make every weight a tf.Variable that receives gradients (for pretraining the backbone). The default frozen
   * mode keeps plain tensors and the input-gradient-only fast paths.
   */
  trainable?: boolean;
}

interface Attention {
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
}

interface FeedForward {
  /** v1.0: [wi]; v1.1 gated: [wi_0 (gelu), wi_1 (linear)]. */
  wi: Linear[];
  wo: Linear;
}

interface EncoderBlock {
  selfLn: tf.Tensor1D;
  self: Attention;
  ffLn: tf.Tensor1D;
  ff: FeedForward;
}

interface DecoderBlock extends EncoderBlock {
  crossLn: tf.Tensor1D;
  cross: Attention;
}

/** How greedy decoding and label scoring run. */
export interface DecodeOptions {
  /**
   * Reuse the encoder output and cross-attention keys/values (and, when decoding, each layer's self-attention
   * keys/values) instead of recomputing them. Default true; false runs the reference path that recomputes.
   */
  kvCache?: boolean;
}

/** What cached greedy decoding keeps between steps. */
interface DecoderState {
  cross: { k: tf.Tensor4D; v: tf.Tensor4D }[];
  crossBias: tf.Tensor4D;
  /** Per layer, [B, H, steps so far, dk]; empty before the first step. */
  selfK: tf.Tensor4D[];
  selfV: tf.Tensor4D[];
}

function disposeDecoderState(s: DecoderState): void {
  tf.dispose([...s.cross.flatMap((c) => [c.k, c.v]), s.crossBias, ...s.selfK, ...s.selfV]);
}

/** Inputs for a teacher-forced pass. */
export interface Seq2SeqBatch {
  /** [B, L, d] encoder input embeddings (prompts already prepended by the method). */
  inputsEmbeds: tf.Tensor3D;
  /** [B, L] 1 for real positions, 0 for padding. */
  attentionMask: tf.Tensor2D;
  /** [B, T] target token ids (int32), ending in </s>, padded with anything. */
  labels: tf.Tensor2D;
  /** [B, T] 1 where the label counts, 0 for padding. */
  labelMask: tf.Tensor2D;
  /** Training-mode dropout (dropout.ts); absent or rate 0: none, as in evaluation. */
  dropout?: DropoutPlan;
}

export interface LossTerms {
  /** Sum over counted target tokens of -log p(token). */
  nllSum: tf.Scalar;
  /** [B] the same sum per example. */
  perExample: tf.Tensor1D;
}

/**
 * A frozen T5 encoder-decoder (v1.0 and v1.1/flan) in TensorFlow.js. Weights are plain tensors, never variables:
 * gradients flow only to the inputs handed in (the methods' prompt embeddings). Hidden states travel as 2-D
 * [batch * length, d] tensors so that every linear layer is one plain 2-D matmul.
 */
export class T5Model {
  readonly config: T5Config;
  readonly shared: tf.Tensor2D;
  private readonly encoder: EncoderBlock[];
  private readonly decoder: DecoderBlock[];
  private readonly encFinalLn: tf.Tensor1D;
  private readonly decFinalLn: tf.Tensor1D;
  private readonly encRelBias: tf.Tensor2D;
  private readonly decRelBias: tf.Tensor2D;
  private readonly lmHead: Linear;
  private readonly positionCache = new Map<string, tf.Tensor>();
  private readonly trainable: boolean;
  /** Every weight by its Hugging Face name (variables in trainable mode). */
  private readonly named = new Map<string, tf.Tensor>();
  private disposed = false;

  private constructor(
    config: T5Config,
    getWeight: (name: string, shape: number[]) => tf.Tensor,
    trainable: boolean,
  ) {
    this.config = config;
    this.trainable = trainable;
    const get = (name: string, shape: number[]) => {
      const t = getWeight(name, shape);
      this.named.set(name, t);
      return t;
    };
    const makeLinear = (w: tf.Tensor2D): Linear => (trainable ? new TrainableLinear(w) : new FrozenLinear(w));
    const d = config.dModel;
    const inner = config.numHeads * config.dKv;
    const lin = (name: string, out: number, inn: number) =>
      makeLinear(get(`${name}.weight`, [out, inn]) as tf.Tensor2D);
    const ln = (name: string) => get(`${name}.weight`, [d]) as tf.Tensor1D;
    const attention = (prefix: string): Attention => ({
      q: lin(`${prefix}.q`, inner, d),
      k: lin(`${prefix}.k`, inner, d),
      v: lin(`${prefix}.v`, inner, d),
      o: lin(`${prefix}.o`, d, inner),
    });
    const gated = config.feedForwardProj === 'gated-gelu';
    const ff = (prefix: string): FeedForward => ({
      wi: gated
        ? [lin(`${prefix}.wi_0`, config.dFf, d), lin(`${prefix}.wi_1`, config.dFf, d)]
        : [lin(`${prefix}.wi`, config.dFf, d)],
      wo: lin(`${prefix}.wo`, d, config.dFf),
    });
    this.shared = get('shared.weight', [config.vocabSize, d]) as tf.Tensor2D;
    this.encoder = [];
    for (let i = 0; i < config.numLayers; i++) {
      const p = `encoder.block.${i}.layer`;
      this.encoder.push({
        selfLn: ln(`${p}.0.layer_norm`),
        self: attention(`${p}.0.SelfAttention`),
        ffLn: ln(`${p}.1.layer_norm`),
        ff: ff(`${p}.1.DenseReluDense`),
      });
    }
    this.decoder = [];
    for (let i = 0; i < config.numDecoderLayers; i++) {
      const p = `decoder.block.${i}.layer`;
      this.decoder.push({
        selfLn: ln(`${p}.0.layer_norm`),
        self: attention(`${p}.0.SelfAttention`),
        crossLn: ln(`${p}.1.layer_norm`),
        cross: attention(`${p}.1.EncDecAttention`),
        ffLn: ln(`${p}.2.layer_norm`),
        ff: ff(`${p}.2.DenseReluDense`),
      });
    }
    const nb = config.relativeAttentionNumBuckets;
    this.encRelBias = get('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', [
      nb,
      config.numHeads,
    ]) as tf.Tensor2D;
    this.decRelBias = get('decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', [
      nb,
      config.numHeads,
    ]) as tf.Tensor2D;
    this.encFinalLn = ln('encoder.final_layer_norm');
    this.decFinalLn = ln('decoder.final_layer_norm');
    this.lmHead = config.tieWordEmbeddings ? makeLinear(this.shared) : lin('lm_head', config.vocabSize, d);
  }

  /**
   * Builds the model from checkpoint tensors (Hugging Face names and shapes). Every tensor becomes a frozen
   * tf.Tensor (a tf.Variable with `trainable: true`); a missing one or a wrong shape throws naming the tensor.
   */
  static fromWeights(
    config: T5Config,
    weights: ReadonlyMap<string, RawTensor>,
    options: T5ModelOptions = {},
  ): T5Model {
    const trainable = options.trainable === true;
    const created: tf.Tensor[] = [];
    try {
      return new T5Model(
        config,
        (name, shape) => {
          const w = weights.get(name);
          if (!w)
            throw new Error(`checkpoint tensor '${name}' is missing (expected shape [${shape.join(', ')}])`);
          assertShape(name, w.shape, shape);
          // Copy: a variable's updates must not write through to the caller's checkpoint arrays.
          const t = trainable
            ? tf.tidy(() => tf.variable(tf.tensor(Float32Array.from(w.data), shape, 'float32'), true))
            : uploadNow(tf.tensor(w.data, shape, 'float32'));
          created.push(t);
          return t;
        },
        trainable,
      );
    } catch (err) {
      for (const t of created) t.dispose();
      throw err;
    }
  }

  /**
   * A frozen model from weights already on the backend (Hugging Face names and shapes), as `loadT5Model` streams
   * them from a checkpoint. The model owns them from here; a missing one or a wrong shape throws naming the tensor
   * and disposes none of them (the caller still owns them then).
   */
  static fromTensors(config: T5Config, weights: ReadonlyMap<string, tf.Tensor>): T5Model {
    for (const [name, shape] of expectedT5TensorShapes(config)) {
      const t = weights.get(name);
      if (!t)
        throw new Error(`checkpoint tensor '${name}' is missing (expected shape [${shape.join(', ')}])`);
      assertShape(name, t.shape, shape);
    }
    return new T5Model(config, (name) => weights.get(name)!, false);
  }

  /** The weights as tf.Variables by Hugging Face name (trainable mode); empty for a frozen model. */
  trainableVariables(): Map<string, tf.Variable> {
    if (!this.trainable) return new Map();
    return new Map([...this.named].map(([name, t]) => [name, t as tf.Variable]));
  }

  /** The current weights as a Hugging Face-named map (what writeT5Checkpoint takes), copied off the backend. */
  exportWeights(): Map<string, RawTensor> {
    const out = new Map<string, RawTensor>();
    for (const [name, t] of this.named)
      out.set(name, { shape: [...t.shape], data: t.dataSync() as Float32Array });
    return out;
  }

  /** Frozen embedding lookup: ids [B, L] int32 -> [B, L, d]. */
  embed(ids: tf.Tensor2D): tf.Tensor3D {
    const [B, L] = ids.shape;
    return tf.tidy(() =>
      tf.reshape(
        this.trainable
          ? gatherRowsTrainable(this.shared, tf.reshape(ids, [-1]) as tf.Tensor1D)
          : tf.gather(this.shared, tf.reshape(ids, [-1])),
        [B, L, this.config.dModel],
      ),
    );
  }

  /**
   * Encoder over input embeddings -> last layer after the final norm, [B, L, d]. `dropout` (training only) drops
   * where Hugging Face's T5Stack does: the input embeddings (prompt rows included), the attention probabilities, the
   * feed-forward activation, each sublayer's output before its residual add, and the output after the final norm.
   */
  encode(inputsEmbeds: tf.Tensor3D, attentionMask: tf.Tensor2D, dropout?: DropoutPlan): tf.Tensor3D {
    const [B, L, d] = inputsEmbeds.shape;
    assertShape('inputsEmbeds', inputsEmbeds.shape, [null, null, this.config.dModel]);
    assertShape('attentionMask', attentionMask.shape, [B, L]);
    const drop = stackDropout(dropout, 'encoder', B);
    return tf.tidy(() => {
      const bias = tf.add(this.positionBias(L, L, true), maskBias(attentionMask));
      let h = tf.reshape(inputsEmbeds, [B * L, d]) as tf.Tensor2D;
      if (drop) h = drop.rows(h, 'embed', L);
      // One scope per layer: what the backward pass needs is kept by the ops themselves, so the layer's other
      // outputs (normed inputs, sublayer outputs, the intermediate residual) go now, not at the end of the stack.
      this.encoder.forEach((blk, i) => {
        const input = h;
        h = tf.tidy(() => {
          const attend = (x: tf.Tensor2D) =>
            this.attend(blk.self, x, undefined, B, L, L, bias, drop, `${i}.self`);
          const mid = this.sublayer(input, blk.selfLn, attend, drop, `${i}.self`, L);
          const ff = (x: tf.Tensor2D) => this.feedForward(blk.ff, x, drop, `${i}.ff`, L);
          return this.sublayer(mid, blk.ffLn, ff, drop, `${i}.ff`, L);
        });
      });
      h = this.rmsNorm(h, this.encFinalLn);
      if (drop) h = drop.rows(h, 'final', L);
      return tf.reshape(h, [B, L, d]) as tf.Tensor3D;
    });
  }

  /** Decoder -> hidden states after the final norm, [B, T, d]. `dropout` as in encode, cross-attention included. */
  decode(
    decoderInputIds: tf.Tensor2D,
    encoderHidden: tf.Tensor3D,
    attentionMask: tf.Tensor2D,
    dropout?: DropoutPlan,
  ): tf.Tensor3D {
    const [B, T] = decoderInputIds.shape;
    const [Be, L, d] = encoderHidden.shape;
    if (Be !== B) throw new ShapeMismatchError('encoderHidden', [B, L, d], encoderHidden.shape);
    assertShape('attentionMask', attentionMask.shape, [B, L]);
    const drop = stackDropout(dropout, 'decoder', B);
    return tf.tidy(() => {
      const selfBias = this.positionBias(T, T, false);
      const crossBias = maskBias(attentionMask);
      const enc = tf.reshape(encoderHidden, [B * L, d]) as tf.Tensor2D;
      let h = tf.reshape(this.embed(decoderInputIds), [B * T, d]) as tf.Tensor2D;
      if (drop) h = drop.rows(h, 'embed', T);
      this.decoder.forEach((blk, i) => {
        const input = h;
        h = tf.tidy(() => {
          const selfAttend = (x: tf.Tensor2D) =>
            this.attend(blk.self, x, undefined, B, T, T, selfBias, drop, `${i}.self`);
          const afterSelf = this.sublayer(input, blk.selfLn, selfAttend, drop, `${i}.self`, T);
          const cross = (x: tf.Tensor2D) =>
            this.attend(blk.cross, x, enc, B, T, L, crossBias, drop, `${i}.cross`);
          const afterCross = this.sublayer(afterSelf, blk.crossLn, cross, drop, `${i}.cross`, T);
          const ff = (x: tf.Tensor2D) => this.feedForward(blk.ff, x, drop, `${i}.ff`, T);
          return this.sublayer(afterCross, blk.ffLn, ff, drop, `${i}.ff`, T);
        });
      });
      h = this.rmsNorm(h, this.decFinalLn);
      if (drop) h = drop.rows(h, 'final', T);
      return tf.reshape(h, [B, T, d]) as tf.Tensor3D;
    });
  }

  /** LM logits for decoder hidden states [B, T, d] -> [B, T, vocab]. v1.0 (tied) rescales by d^-0.5 first. */
  lmLogits(decoderHidden: tf.Tensor3D): tf.Tensor3D {
    const [B, T, d] = decoderHidden.shape;
    return tf.tidy(() => {
      let h = tf.reshape(decoderHidden, [B * T, d]) as tf.Tensor2D;
      if (this.config.tieWordEmbeddings) h = tf.mul(h, d ** -0.5);
      return tf.reshape(this.lmHead.apply(h), [B, T, this.config.vocabSize]) as tf.Tensor3D;
    });
  }

  /** Decoder inputs for teacher forcing: labels shifted right behind the decoder start token. */
  shiftRight(labels: tf.Tensor2D, labelMask: tf.Tensor2D): tf.Tensor2D {
    const [B, T] = labels.shape;
    return tf.tidy(() => {
      const masked = tf.where(
        tf.cast(labelMask, 'bool'),
        labels,
        tf.fill([B, T], this.config.padTokenId, 'int32'),
      );
      const start = tf.fill([B, 1], this.config.decoderStartTokenId, 'int32');
      return tf.concat([start, tf.slice(masked, [0, 0], [B, T - 1])], 1) as tf.Tensor2D;
    });
  }

  /** Teacher-forced token negative log-likelihood, summed (so shards can be added exactly). */
  lossTerms(batch: Seq2SeqBatch): LossTerms {
    const { inputsEmbeds, attentionMask, labels, labelMask, dropout } = batch;
    const [B, T] = labels.shape;
    assertShape('labelMask', labelMask.shape, [B, T]);
    if (inputsEmbeds.shape[0] !== B) {
      throw new ShapeMismatchError('labels', [inputsEmbeds.shape[0], T], labels.shape);
    }
    return tf.tidy(() => {
      const enc = this.encode(inputsEmbeds, attentionMask, dropout);
      const dec = this.decode(this.shiftRight(labels, labelMask), enc, attentionMask, dropout);
      const logits = tf.reshape(this.lmLogits(dec), [B * T, this.config.vocabSize]) as tf.Tensor2D;
      const tokenLoss = tokenNll(logits, tf.reshape(labels, [-1]) as tf.Tensor1D);
      const nll = tf.reshape(tf.mul(tokenLoss, tf.reshape(tf.cast(labelMask, 'float32'), [-1])), [B, T]);
      const perExample = tf.sum(nll, 1) as tf.Tensor1D;
      return { nllSum: tf.sum(perExample) as tf.Scalar, perExample };
    });
  }

  /** Mean token cross-entropy over counted label tokens (what Hugging Face's T5 returns as `loss`). */
  loss(batch: Seq2SeqBatch): tf.Scalar {
    return tf.tidy(() => {
      const { nllSum } = this.lossTerms(batch);
      return tf.div(nllSum, tf.maximum(tf.sum(tf.cast(batch.labelMask, 'float32')), 1)) as tf.Scalar;
    });
  }

  /**
   * Greedy decoding: each example stops at </s> (which is not included in the result) or after maxLength tokens.
   * The encoder and each layer's cross-attention keys/values run once per batch; each step runs the decoder on the
   * one new token against the self-attention keys/values kept from earlier steps. `kvCache: false` re-runs the
   * whole decoder on the growing prefix instead: the reference the cached path is tested and benchmarked against.
   */
  greedyDecode(
    inputsEmbeds: tf.Tensor3D,
    attentionMask: tf.Tensor2D,
    maxLength: number,
    options: DecodeOptions = {},
  ): number[][] {
    const B = inputsEmbeds.shape[0];
    const seqs: number[][] = Array.from({ length: B }, () => []);
    const done = new Array<boolean>(B).fill(false);
    const prefix: number[][] = Array.from({ length: B }, () => [this.config.decoderStartTokenId]);
    // Examples that finished are fed padding, as the reference does, so the rows of a batch stay aligned.
    const advance = (tokens: ArrayLike<number>) => {
      for (let b = 0; b < B; b++) {
        const tok = tokens[b]!;
        prefix[b]!.push(done[b] ? this.config.padTokenId : tok);
        if (done[b]) continue;
        if (tok === this.config.eosTokenId) done[b] = true;
        else seqs[b]!.push(tok);
      }
    };
    const enc = this.encode(inputsEmbeds, attentionMask);
    let state: DecoderState | undefined;
    try {
      if (options.kvCache === false) {
        for (let step = 0; step < maxLength && done.some((x) => !x); step++) {
          const next = tf.tidy(() => {
            const ids = tf.tensor2d(prefix.flat(), [B, step + 1], 'int32');
            const logits = this.lmLogits(this.decode(ids, enc, attentionMask));
            const last = tf.slice(logits, [0, step, 0], [B, 1, this.config.vocabSize]);
            return tf.argMax(tf.reshape(last, [B, this.config.vocabSize]), -1);
          });
          const tokens = next.dataSync();
          next.dispose();
          advance(tokens);
        }
        return seqs;
      }
      state = this.startDecoderState(enc, attentionMask);
      for (let step = 0; step < maxLength && done.some((x) => !x); step++) {
        const ids = prefix.map((p) => p[step]!);
        const { next, keys, values } = this.decodeStep(state, ids, step);
        tf.dispose([...state.selfK, ...state.selfV]);
        state.selfK = keys;
        state.selfV = values;
        const tokens = next.dataSync();
        next.dispose();
        advance(tokens);
      }
      return seqs;
    } finally {
      enc.dispose();
      if (state) disposeDecoderState(state);
    }
  }

  /**
   * Log-likelihood of each candidate target (token ids, normally ending in </s>) for each example: [B][C].
   * Used for classification by label scoring. The encoder and the cross-attention keys/values run once per
   * example and are shared by its C candidates (cross-attention treats them as C*T query rows of one example);
   * `kvCache: false` repeats the encoder output per candidate and runs the full decoder (the reference).
   */
  scoreCandidates(
    inputsEmbeds: tf.Tensor3D,
    attentionMask: tf.Tensor2D,
    candidates: number[][],
    options: DecodeOptions = {},
  ): number[][] {
    const [B, L, d] = inputsEmbeds.shape;
    const C = candidates.length;
    const T = Math.max(...candidates.map((c) => c.length));
    const scores = tf.tidy(() => {
      const enc = this.encode(inputsEmbeds, attentionMask);
      const lab = new Int32Array(B * C * T);
      const labMask = new Float32Array(B * C * T);
      for (let i = 0; i < B * C; i++) {
        const c = candidates[i % C]!;
        for (let t = 0; t < c.length; t++) {
          lab[i * T + t] = c[t]!;
          labMask[i * T + t] = 1;
        }
      }
      const labels = tf.tensor2d(lab, [B * C, T], 'int32');
      const labelMask = tf.tensor2d(labMask, [B * C, T]);
      let dec: tf.Tensor3D;
      if (options.kvCache === false) {
        const rows = tf.tensor1d(
          Array.from({ length: B * C }, (_, i) => Math.floor(i / C)),
          'int32',
        );
        const encRep = tf.reshape(tf.gather(enc, rows), [B * C, L, d]) as tf.Tensor3D;
        const maskRep = tf.gather(attentionMask, rows) as tf.Tensor2D;
        dec = this.decode(this.shiftRight(labels, labelMask), encRep, maskRep);
      } else {
        const cross = this.crossKeysValues(enc);
        const h = this.decoderLayers(
          tf.reshape(this.embed(this.shiftRight(labels, labelMask)), [B * C * T, d]) as tf.Tensor2D,
          B,
          C * T,
          cross,
          maskBias(attentionMask),
          (blk, x) => {
            const { q, k, v } = this.projectHeads(blk.self, x, B * C, T);
            return this.attendHeads(blk.self, q, k, v, this.positionBias(T, T, false), B * C, T);
          },
        );
        dec = tf.reshape(h, [B * C, T, d]) as tf.Tensor3D;
      }
      const logits = tf.reshape(this.lmLogits(dec), [B * C * T, this.config.vocabSize]) as tf.Tensor2D;
      const tokenLoss = tokenNll(logits, tf.reshape(labels, [-1]) as tf.Tensor1D);
      return tf.neg(tf.sum(tf.reshape(tf.mul(tokenLoss, tf.reshape(labelMask, [-1])), [B * C, T]), 1));
    });
    const flat = scores.dataSync();
    scores.dispose();
    return Array.from({ length: B }, (_, b) => Array.from(flat.subarray(b * C, (b + 1) * C)));
  }

  /**
   * Matmul FLOPs (2 x MACs) of one forward pass, split into the frozen linear layers (whose input-gradient backward
   * costs the same again) and the attention score/mix products (whose backward costs twice their forward: dP, dS K,
   * dS^T Q, P^T dO).
   */
  matmulFlops(batch: number, srcLen: number, tgtLen: number): { linear: number; attention: number } {
    const c = this.config;
    const d = c.dModel;
    const inner = c.numHeads * c.dKv;
    const ffIn = c.feedForwardProj === 'gated-gelu' ? 2 : 1;
    const ff = (rows: number) => rows * (ffIn * d * c.dFf + c.dFf * d);
    const encRows = batch * srcLen;
    const decRows = batch * tgtLen;
    const attnMix = (lq: number, lk: number) => 2 * batch * c.numHeads * lq * lk * c.dKv;
    const linear =
      c.numLayers * (encRows * 4 * d * inner + ff(encRows)) +
      c.numDecoderLayers * (decRows * 6 * d * inner + encRows * 2 * d * inner + ff(decRows)) +
      decRows * d * c.vocabSize;
    const attention =
      c.numLayers * attnMix(srcLen, srcLen) +
      c.numDecoderLayers * (attnMix(tgtLen, tgtLen) + attnMix(tgtLen, srcLen));
    return { linear: 2 * linear, attention: 2 * attention };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const lins: Linear[] = [];
    const others: tf.Tensor[] = [
      this.shared,
      this.encFinalLn,
      this.decFinalLn,
      this.encRelBias,
      this.decRelBias,
    ];
    for (const b of [...this.encoder, ...this.decoder]) {
      lins.push(b.self.q, b.self.k, b.self.v, b.self.o, ...b.ff.wi, b.ff.wo);
      others.push(b.selfLn, b.ffLn);
      if ('cross' in b) {
        const db = b as DecoderBlock;
        lins.push(db.cross.q, db.cross.k, db.cross.v, db.cross.o);
        others.push(db.crossLn);
      }
    }
    if (this.config.tieWordEmbeddings) {
      if (this.lmHead instanceof FrozenLinear) this.lmHead.disposeTranspose();
    } else lins.push(this.lmHead);
    for (const l of lins) l.dispose();
    for (const t of others) t.dispose();
    for (const t of this.positionCache.values()) t.dispose();
    this.positionCache.clear();
  }

  /** Each decoder layer's cross-attention keys and values over the encoder output, [B, H, L, dk] each. */
  private crossKeysValues(enc: tf.Tensor3D): { k: tf.Tensor4D; v: tf.Tensor4D }[] {
    const [B, L, d] = enc.shape;
    return tf.tidy(() => {
      const rows = tf.reshape(enc, [B * L, d]) as tf.Tensor2D;
      return this.decoder.map((blk) => ({
        k: this.splitHeads(blk.cross.k.apply(rows), B, L),
        v: this.splitHeads(blk.cross.v.apply(rows), B, L),
      }));
    });
  }

  /**
   * The decoder stack on rows [B * Lq, d] (Lq query rows per example, in example order) with precomputed
   * cross-attention keys/values; `selfAttention` gives each layer's self-attention output for its normed input.
   * Returns the hidden states after the final norm, [B * Lq, d].
   */
  private decoderLayers(
    h0: tf.Tensor2D,
    B: number,
    Lq: number,
    cross: readonly { k: tf.Tensor4D; v: tf.Tensor4D }[],
    crossBias: tf.Tensor,
    selfAttention: (blk: DecoderBlock, x: tf.Tensor2D, layer: number) => tf.Tensor2D,
  ): tf.Tensor2D {
    return tf.tidy(() => {
      let h = h0;
      this.decoder.forEach((blk, i) => {
        h = tf.add(h, selfAttention(blk, this.rmsNorm(h, blk.selfLn), i));
        const q = this.splitHeads(blk.cross.q.apply(this.rmsNorm(h, blk.crossLn)), B, Lq);
        h = tf.add(h, this.attendHeads(blk.cross, q, cross[i]!.k, cross[i]!.v, crossBias, B, Lq));
        h = tf.add(h, this.feedForward(blk.ff, this.rmsNorm(h, blk.ffLn)));
      });
      return this.rmsNorm(h, this.decFinalLn);
    });
  }

  private startDecoderState(enc: tf.Tensor3D, attentionMask: tf.Tensor2D): DecoderState {
    return {
      cross: this.crossKeysValues(enc),
      crossBias: maskBias(attentionMask),
      selfK: [],
      selfV: [],
    };
  }

  /**
   * One greedy step on the token at position `step` of each example: returns the argmax next token [B] and each
   * layer's self-attention keys/values grown by this position (the caller disposes the previous ones).
   */
  private decodeStep(
    state: DecoderState,
    ids: number[],
    step: number,
  ): { next: tf.Tensor1D; keys: tf.Tensor4D[]; values: tf.Tensor4D[] } {
    const B = ids.length;
    const d = this.config.dModel;
    return tf.tidy(() => {
      const keys: tf.Tensor4D[] = [];
      const values: tf.Tensor4D[] = [];
      // The new query's row of the causal bias: every cached key is at or before it, so nothing is masked.
      const bias = this.stepPositionBias(step);
      const x = tf.reshape(this.embed(tf.tensor2d(ids, [B, 1], 'int32')), [B, d]) as tf.Tensor2D;
      const h = this.decoderLayers(x, B, 1, state.cross, state.crossBias, (blk, xn, i) => {
        const { q, k, v } = this.projectHeads(blk.self, xn, B, 1);
        const prevK = state.selfK[i];
        const prevV = state.selfV[i];
        // Kept: they outlive decoderLayers' tidy and this step's, and go back to the caller.
        const allK = tf.keep(prevK ? (tf.concat([prevK, k], 2) as tf.Tensor4D) : k);
        const allV = tf.keep(prevV ? (tf.concat([prevV, v], 2) as tf.Tensor4D) : v);
        keys.push(allK);
        values.push(allV);
        return this.attendHeads(blk.self, q, allK, allV, bias, B, 1);
      });
      const logits = tf.reshape(this.lmLogits(tf.reshape(h, [B, 1, d]) as tf.Tensor3D), [
        B,
        this.config.vocabSize,
      ]);
      return { next: tf.argMax(logits, -1) as tf.Tensor1D, keys, values };
    });
  }

  /** [1, H, 1, step + 1]: decoder relative position bias of query position `step` against keys 0..step. */
  private stepPositionBias(step: number): tf.Tensor {
    const c = this.config;
    return tf.tidy(() => {
      const buckets = relativePositionBuckets(
        1,
        step + 1,
        false,
        c.relativeAttentionNumBuckets,
        c.relativeAttentionMaxDistance,
        step,
      );
      const idx = tf.tensor1d(buckets, 'int32');
      const vals = this.trainable
        ? gatherRowsTrainable(this.decRelBias, idx)
        : tf.gather(this.decRelBias, idx);
      return tf.reshape(tf.transpose(vals), [1, c.numHeads, 1, step + 1]);
    });
  }

  /** Rows [B * L, H * dk] -> [B, H, L, dk]. */
  private splitHeads(t: tf.Tensor2D, B: number, L: number): tf.Tensor4D {
    return rowsToHeads(t, B, L, this.config.numHeads, this.config.dKv);
  }

  private projectHeads(
    att: Attention,
    x: tf.Tensor2D,
    B: number,
    L: number,
  ): { q: tf.Tensor4D; k: tf.Tensor4D; v: tf.Tensor4D } {
    return {
      q: this.splitHeads(att.q.apply(x), B, L),
      k: this.splitHeads(att.k.apply(x), B, L),
      v: this.splitHeads(att.v.apply(x), B, L),
    };
  }

  /** Attention on split heads, then the output projection: -> rows [B * Lq, d]. */
  private attendHeads(
    att: Attention,
    q: tf.Tensor4D,
    k: tf.Tensor4D,
    v: tf.Tensor4D,
    bias: tf.Tensor,
    B: number,
    Lq: number,
  ): tf.Tensor2D {
    const { numHeads: H, dKv: dk } = this.config;
    return tf.tidy(() => {
      const out = attentionCore(q, k, v, bias);
      return att.o.apply(headsToRows(out, B, Lq, H, dk));
    });
  }

  /**
   * One pre-norm sublayer with its residual, as T5's T5LayerSelfAttention / T5LayerCrossAttention / T5LayerFF:
   * input + dropout(f(rmsNorm(input))), the dropout mask named `<name>.out` over `rows` positions per example.
   */
  private sublayer(
    input: tf.Tensor2D,
    ln: tf.Tensor1D,
    f: (normed: tf.Tensor2D) => tf.Tensor2D,
    drop: StackDropout | undefined,
    name: string,
    rows: number,
  ): tf.Tensor2D {
    const out = f(this.rmsNorm(input, ln));
    return residualAdd(input, drop ? drop.rows(out, `${name}.out`, rows) : out);
  }

  /** T5LayerNorm: scale only, no mean subtraction, no bias. */
  private rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D): tf.Tensor2D {
    // Native TensorFlow: the hand-written gradient (rms-norm.ts); measured on the t5-small bench step there. The
    // frozen backbone only: a backbone being pretrained also needs the weight's gradient, which autodiff gives.
    if (!this.trainable && nativeKernelsAvailable()) {
      return frozenRmsNorm(x, weight, this.config.layerNormEpsilon);
    }
    return tf.tidy(() => {
      const variance = tf.mean(tf.square(x), -1, true);
      return tf.mul(
        tf.mul(x, tf.rsqrt(tf.add(variance, this.config.layerNormEpsilon))),
        weight,
      ) as tf.Tensor2D;
    });
  }

  /** DenseReluDense; with `drop`, the activation (after the gate, for v1.1) is dropped as HF does. */
  private feedForward(
    ff: FeedForward,
    x: tf.Tensor2D,
    drop?: StackDropout,
    site?: string,
    L?: number,
  ): tf.Tensor2D {
    return tf.tidy(() => {
      const [wi0, wi1] = ff.wi;
      let hidden = (wi1 ? tf.mul(geluNew(wi0!.apply(x)), wi1.apply(x)) : relu(wi0!.apply(x))) as tf.Tensor2D;
      if (drop) hidden = drop.rows(hidden, `${site}.hidden`, L!);
      return ff.wo.apply(hidden);
    });
  }

  /**
   * Multi-head attention from 2-D rows: x [B*Lq, d] queries; kv [B*Lk, d] keys/values (undefined: self-attention).
   * With `drop`, the attention probabilities get the mask of site `<site>.probs`.
   */
  private attend(
    att: Attention,
    x: tf.Tensor2D,
    kv: tf.Tensor2D | undefined,
    B: number,
    Lq: number,
    Lk: number,
    bias: tf.Tensor,
    drop?: StackDropout,
    site?: string,
  ): tf.Tensor2D {
    const { numHeads: H, dKv: dk } = this.config;
    return tf.tidy(() => {
      const src = kv ?? x;
      const out = multiHeadAttention(
        att.q.apply(x),
        att.k.apply(src),
        att.v.apply(src),
        { B, H, Lq, Lk, dk },
        bias,
        drop ? { keep: drop.attentionKeep(`${site}.probs`, H, Lq, Lk), rate: drop.rate } : undefined,
        // Only self-attention's bias holds the relative position table; cross-attention's is the padding mask.
        this.trainable && kv === undefined,
      );
      return att.o.apply(out);
    });
  }

  /**
   * [1, H, Lq, Lk] relative position bias (plus the causal mask for the decoder), cached per shape because it
   * depends only on the lengths and the frozen bias table.
   */
  private positionBias(Lq: number, Lk: number, bidirectional: boolean): tf.Tensor {
    // A trained bias table changes every update, and a cached gather would cut its gradient.
    if (this.trainable) return this.computePositionBias(Lq, Lk, bidirectional);
    const key = `${bidirectional ? 'e' : 'd'}:${Lq}:${Lk}`;
    const hit = this.positionCache.get(key);
    if (hit) return hit;
    const t = this.computePositionBias(Lq, Lk, bidirectional);
    if (this.positionCache.size >= POSITION_CACHE_LIMIT) {
      const oldest = this.positionCache.keys().next().value as string;
      this.positionCache.get(oldest)?.dispose();
      this.positionCache.delete(oldest);
    }
    this.positionCache.set(key, tf.keep(t));
    return t;
  }

  private computePositionBias(Lq: number, Lk: number, bidirectional: boolean): tf.Tensor {
    const c = this.config;
    return tf.tidy(() => {
      const buckets = relativePositionBuckets(
        Lq,
        Lk,
        bidirectional,
        c.relativeAttentionNumBuckets,
        c.relativeAttentionMaxDistance,
      );
      const table = bidirectional ? this.encRelBias : this.decRelBias;
      const idx = tf.tensor1d(buckets, 'int32');
      const vals = this.trainable ? gatherRowsTrainable(table, idx) : tf.gather(table, idx); // [Lq*Lk, H]
      let bias: tf.Tensor = tf.reshape(tf.transpose(vals), [1, c.numHeads, Lq, Lk]);
      if (!bidirectional) {
        const causal = new Float32Array(Lq * Lk);
        for (let i = 0; i < Lq; i++) for (let j = i + 1; j < Lk; j++) causal[i * Lk + j] = MASK_VALUE;
        bias = tf.add(bias, tf.tensor4d(causal, [1, 1, Lq, Lk]));
      }
      return bias;
    });
  }
}

/** [B, L] 0/1 mask -> additive [B, 1, 1, L] bias. */
function maskBias(mask: tf.Tensor2D): tf.Tensor4D {
  const [B, L] = mask.shape;
  return tf.tidy(
    () => tf.reshape(tf.mul(tf.sub(1, tf.cast(mask, 'float32')), MASK_VALUE), [B, 1, 1, L]) as tf.Tensor4D,
  );
}

/** The tanh approximation of GELU that T5 v1.1 uses ("gelu_new"). */
function geluNew(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
  });
}
