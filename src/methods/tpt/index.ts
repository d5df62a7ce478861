import { registerMethod } from '../registry.js';
import { tpt } from './tpt.js';

registerMethod(tpt);

export {
  parseTptConfig,
  resolveBankSource,
  type TptConfig,
  type TptSelector,
  type TptStage,
} from './config.js';
export { rangeInit } from './range-init.js';
export { Tpt, type TptSelection, tpt } from './tpt.js';
