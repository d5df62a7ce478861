#!/usr/bin/env node
/**
 * The worker process's entry point: `node dist/workers/main.js [options]` is `promptmesh worker [options]`.
 *
 * What a worker does lives in the library (src/runtime/worker/), where the CLI, the tests and the benchmarks reach
 * it with their own NATS connection, bank and clock; its flags and wiring are the CLI's `worker` command. This
 * folder is the process: nothing in src/ imports it.
 */
import { runCli } from '../src/cli/main.js';

process.exitCode = await runCli(['worker', ...process.argv.slice(2)]);
// Same as the CLI: a finished worker must not linger on a handle a library left open.
setTimeout(() => process.exit(process.exitCode), 1500).unref();
