import { registerMethod } from '../registry.js';
import { attempt } from './attempt.js';

registerMethod(attempt);

export {
  ATTENTION_DOWN,
  ATTENTION_INIT_STD,
  ATTENTION_LN_BETA,
  ATTENTION_LN_GAMMA,
  ATTENTION_UP,
  Attempt,
  attempt,
  PAPER_SOURCES,
  sourceName,
  targetName,
} from './attempt.js';
export {
  type AttentionModule,
  attentionQuery,
  candidateLogits,
  LAYER_NORM_EPS,
  layerNorm,
  mixPrompts,
  poolInput,
} from './attention.js';
export {
  ATTENTION_VARIANTS,
  type AttemptConfig,
  type AttentionVariant,
  attemptTemperature,
  parseAttemptConfig,
} from './config.js';
