#!/usr/bin/env node
/**
 * The coordinator process's entry point: `node dist/coordinator/main.js [options]` is `promptmesh coordinator [options]`.
 *
 * What the coordinator does lives in the library (src/runtime/coordinator/), where the CLI, the tests and the benchmarks reach
 * it with their own NATS connection, bank and clock; its flags and wiring are the CLI's `coordinator` command. This
 * folder is the process: nothing in src/ imports it.
 */
import { runCli } from '../src/cli/main.js';

process.exitCode = await runCli(['coordinator', ...process.argv.slice(2)]);
// Same as the CLI: a finished coordinator must not linger on a handle a library left open.
setTimeout(() => process.exit(process.exitCode), 1500).unref();
