export { attentionCore, batchedAttention, multiHeadAttention, splitHeadAttention } from './attention-core.js';
export { tokenNll } from './cross-entropy.js';
export { applyDropout, type DropoutPlan, keepFlags } from './dropout.js';
export { assertShape, ShapeMismatchError } from './errors.js';
export { FrozenLinear } from './frozen-linear.js';
export { relativePositionBucket, relativePositionBuckets } from './relative-position.js';
export {
  type DecodeOptions,
  type LossTerms,
  type RawTensor,
  type Seq2SeqBatch,
  T5Model,
  type T5ModelOptions,
} from './t5-model.js';
export { TrainableLinear } from './trainable-linear.js';
