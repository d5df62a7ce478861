/**
 * Which all-reduce algorithm runs for a buffer. Below the crossover, per-message latency dominates and
 * halving-doubling's 2*log2(N) rounds beat the ring's 2(N-1); above it the ring's pipelining and its even use of
 * every link win. The crossover is a measurement, not a derivation: see docs/collective.md (bench/allreduce.ts
 * prints both algorithms with --compare-algorithms).
 */
import { CollectiveConfigError } from './errors.js';

export type AlgorithmName = 'ring' | 'halving-doubling';
export type AlgorithmChoice = AlgorithmName | 'auto';

/** Buffers smaller than this (in bytes of float32 data) use halving-doubling. Measured; see docs/collective.md. */
export const DEFAULT_CROSSOVER_BYTES = 256 * 1024;

export function selectAlgorithm(
  byteLength: number,
  worldSize: number,
  choice: AlgorithmChoice,
  crossoverBytes: number,
): AlgorithmName {
  if (choice !== 'auto') return choice;
  // With two ranks both algorithms send the same messages; the ring pipelines them.
  if (worldSize <= 2) return 'ring';
  return byteLength < crossoverBytes ? 'halving-doubling' : 'ring';
}

export function parseAlgorithmChoice(a: string | undefined): AlgorithmChoice {
  if (a === undefined) return 'auto';
  if (a === 'auto' || a === 'ring' || a === 'halving-doubling') return a;
  throw new CollectiveConfigError(`algorithm '${a}' is not one of auto, ring, halving-doubling`);
}
