import type { CliCommand } from '../command.js';
import { command as describe } from './describe.js';
import { command as modelRun } from './model-run.js';
import { command as tokenize } from './tokenize.js';
import { command as train } from './train.js';

/** Every subcommand, in the order `promptmesh --help` lists them. */
export const commands: CliCommand[] = [train, describe, modelRun, tokenize];
