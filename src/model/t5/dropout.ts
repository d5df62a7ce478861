import * as tf from '@tensorflow/tfjs-core';
import { hash32 } from '../../data/rng.js';

/**
 * What a training pass drops. Hugging Face's T5 in training mode applies `nn.Dropout(dropout_rate)` to each stack's
 * input embeddings, to the attention probabilities, to the output of every sublayer (self-attention,
 * cross-attention, feed-forward) before it is added to the residual stream, inside the feed-forward after the
 * activation, and to each stack's output after its final norm; kept units are scaled by 1/(1 - rate).
 *
 * The masks are not drawn from a stream. Each element is a counter-based hash of (its example's key, the site, its
 * coordinates), so an example gets the same masks whatever batch, micro-batch, worker or retry computes it, on every
 * backend, and whatever length the batch is padded to (coordinates are positions, never offsets into a padded
 * buffer).
 */
export interface DropoutPlan {
  /** Probability of zeroing a unit, in [0, 1). 0 applies nothing. */
  rate: number;
  /** One 32-bit key per example of the batch (row b uses exampleKeys[b]); the caller derives it. */
  exampleKeys: readonly number[];
}

/** Which stack a site is in; the decoder's sites never share masks with the encoder's. */
export type DropoutStack = 'encoder' | 'decoder';

/**
 * Keep flags (1 keep, 0 drop) for a tensor [B, ...rowDims, cols] of the site `site`: element (b, r..., c) is kept
 * when fmix32(rowKey + (c + 1) * golden) >= rate * 2^32 (fmix32: murmur3's finaliser, golden = 0x9e3779b9), with
 * rowKey = hash32(hash32(exampleKeys[b], site), r...): a splitmix-style counter, a fresh, well-mixed 32-bit word
 * per element. About 300M elements/s on one core.
 */
export function keepFlags(
  plan: DropoutPlan,
  site: string,
  rowDims: readonly number[],
  cols: number,
): Uint8Array {
  const B = plan.exampleKeys.length;
  const rows = rowDims.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(B * rows * cols);
  // Drop when the word is below the threshold: P(drop) = threshold / 2^32, within 2^-32 of the rate. The
  // comparison is done on words offset by 2^31 as signed int32s: the same order, and V8 keeps them small integers.
  const threshold = (Math.round(plan.rate * 4294967296) - 2147483648) | 0;
  const idx = new Array<number>(rowDims.length).fill(0);
  let o = 0;
  for (let b = 0; b < B; b++) {
    const siteKey = hash32(plan.exampleKeys[b]!, site);
    idx.fill(0);
    for (let r = 0; r < rows; r++) {
      fillRow(out, o, cols, hash32(siteKey, ...idx), threshold);
      o += cols;
      for (let a = idx.length - 1; a >= 0; a--) {
        if (++idx[a]! < rowDims[a]!) break;
        idx[a] = 0;
      }
    }
  }
  return out;
}

/** Element c's counter is rowKey + (c + 1) * golden (mod 2^32), mixed by murmur3's finaliser. */
function fillRow(out: Uint8Array, offset: number, cols: number, rowKey: number, threshold: number): void {
  let s = rowKey | 0;
  for (let c = 0; c < cols; c++) {
    s = (s + 0x9e3779b9) | 0;
    let z = Math.imul(s ^ (s >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    out[offset + c] = ((z ^ (z >>> 16) ^ 0x80000000) | 0) >= threshold ? 1 : 0;
  }
}

/** keepFlags as a bool tensor of shape [B, ...rowDims, cols]. */
export function keepMask(
  plan: DropoutPlan,
  site: string,
  rowDims: readonly number[],
  cols: number,
): tf.Tensor {
  return tf.tensor(keepFlags(plan, site, rowDims, cols), [plan.exampleKeys.length, ...rowDims, cols], 'bool');
}

/**
 * x * keep / (1 - rate), with the gradient dy * keep / (1 - rate). Written as a custom op so that only the 1-byte
 * keep mask is saved for the backward pass, not a float copy of it.
 */
export function applyDropout<T extends tf.Tensor>(x: T, keep: tf.Tensor, rate: number): T {
  const scale = 1 / (1 - rate);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, save] = args as [tf.Tensor, tf.GradSaveFunc];
    save([keep]);
    return {
      value: tf.mul(input, tf.mul(tf.cast(keep, 'float32'), scale)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => tf.mul(dy, tf.mul(tf.cast(saved[0]!, 'float32'), scale))),
    };
  });
  return op(x) as T;
}

/**
 * The dropout of one stack in one pass: hands out each site's mask and applies it to hidden rows. Site names are
 * `<stack>.<layer>.<kind>` (`<stack>.embed` and `<stack>.final` for the stack's input and output).
 */
export class StackDropout {
  constructor(
    private readonly plan: DropoutPlan,
    private readonly stack: DropoutStack,
  ) {}

  get rate(): number {
    return this.plan.rate;
  }

  /** Rows [B * L, width] (position-major per example) with the site's mask applied. */
  rows(x: tf.Tensor2D, site: string, L: number): tf.Tensor2D {
    const width = x.shape[1];
    return tf.tidy(() => {
      const keep = tf.reshape(keepMask(this.plan, `${this.stack}.${site}`, [L], width), x.shape);
      return applyDropout(x, keep, this.plan.rate);
    });
  }

  /** The keep mask [B, H, Lq, Lk] of one attention's probabilities. */
  attentionKeep(site: string, H: number, Lq: number, Lk: number): tf.Tensor4D {
    return keepMask(this.plan, `${this.stack}.${site}`, [H, Lq], Lk) as tf.Tensor4D;
  }
}

/** The stack's dropout for this pass, or undefined when the plan applies none. */
export function stackDropout(
  plan: DropoutPlan | undefined,
  stack: DropoutStack,
  batch: number,
): StackDropout | undefined {
  if (!plan || plan.rate === 0) return undefined;
  if (!(plan.rate > 0 && plan.rate < 1))
    throw new RangeError(`dropout rate must be in [0, 1), got ${plan.rate}`);
  if (plan.exampleKeys.length !== batch) {
    throw new RangeError(`dropout plan has ${plan.exampleKeys.length} example keys for a batch of ${batch}`);
  }
  return new StackDropout(plan, stack);
}
