import { registerMethod } from '../registry.js';
import { spt } from './spt.js';

registerMethod(spt);

export { parseSptConfig, type SptConfig } from './config.js';
export { Spt, type SptSelection, spt } from './spt.js';
