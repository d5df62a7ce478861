import { registerMethod } from '../registry.js';
import { promptTuning } from './prompt-tuning.js';

registerMethod(promptTuning);

export { type PromptTuningConfig, parsePromptTuningConfig } from './config.js';
export { promptTuning } from './prompt-tuning.js';
