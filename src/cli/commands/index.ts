import type { CliCommand } from '../command.js';
import { command as modelRun } from './model-run.js';
import { command as tokenize } from './tokenize.js';

/** Every subcommand, in the order `promptmesh --help` lists them. */
export const commands: CliCommand[] = [modelRun, tokenize];
