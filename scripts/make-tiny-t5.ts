#!/usr/bin/env node
/**
 * Writes a tiny random T5 checkpoint folder (config.json + safetensors) for tests and demos.
 * Usage: node dist/scripts/make-tiny-t5.js --out DIR --variant v1|v1.1 [--seed N] [--vocab N] [--shards N]
 */
import { parseArgs } from 'node:util';
import { makeTinyT5, planShards, writeT5Checkpoint } from '../src/model/checkpoint/index.js';

const USAGE =
  'usage: node dist/scripts/make-tiny-t5.js --out DIR --variant v1|v1.1 [--seed N] [--vocab N] [--shards N]';

function intArg(values: Record<string, unknown>, name: string, min: number): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min)
    throw new Error(`--${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}

/** Smallest shard size for which transformers' greedy split yields at most `shards` files. */
function shardBytesFor(sizes: [string, number][], shards: number): number {
  let lo = Math.max(...sizes.map(([, b]) => b));
  let hi = sizes.reduce((a, [, b]) => a + b, 0);
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (planShards(sizes, mid).length <= shards) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function main(argv: string[]): number {
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        out: { type: 'string' },
        variant: { type: 'string' },
        seed: { type: 'string' },
        vocab: { type: 'string' },
        shards: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    if (typeof values.out !== 'string' || values.out === '') throw new Error('--out DIR is required');
    if (values.variant !== 'v1' && values.variant !== 'v1.1') throw new Error('--variant must be v1 or v1.1');
    const seed = intArg(values, 'seed', 0) ?? 0;
    const vocabSize = intArg(values, 'vocab', 2);
    const shards = intArg(values, 'shards', 1) ?? 1;
    const { config, tensors } = makeTinyT5({ variant: values.variant, seed, vocabSize });
    const sizes = [...tensors].map(([n, t]) => [n, t.data.byteLength] as [string, number]);
    const files = writeT5Checkpoint(
      values.out,
      config,
      tensors,
      shards > 1 ? { shardBytes: shardBytesFor(sizes, shards) } : {},
    );
    console.log(
      `wrote T5 ${values.variant} (seed ${seed}, vocab ${config.vocabSize}) to ${values.out}: ${files.join(', ')}`,
    );
    return 0;
  } catch (e) {
    console.error(`make-tiny-t5: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
