import type { CliCommand } from '../command.js';
import { commands as bankCommands } from './bank.js';
import { command as coordinator } from './coordinator.js';
import { command as describe } from './describe.js';
import { command as evalCmd } from './eval.js';
import { historyCommand, plotCommand } from './history.js';
import { command as methodRun } from './method-run.js';
import { command as modelRun } from './model-run.js';
import { command as predict } from './predict.js';
import { command as pretrain } from './pretrain.js';
import { command as serve } from './serve.js';
import { command as tokenize } from './tokenize.js';
import { command as train } from './train.js';
import { command as up } from './up.js';
import { command as worker } from './worker.js';

/** Every subcommand, in the order `promptmesh --help` lists them. */
export const commands: CliCommand[] = [
  up,
  train,
  coordinator,
  worker,
  evalCmd,
  predict,
  serve,
  describe,
  pretrain,
  modelRun,
  methodRun,
  tokenize,
  plotCommand,
  ...bankCommands,
  historyCommand,
];
