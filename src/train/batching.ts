import * as tf from '@tensorflow/tfjs-core';
import type { PromptBatch } from '../methods/index.js';

/** The tokenizer surface the trainer needs. */
export interface TextEncoder {
  encode(text: string, options?: { addEos?: boolean }): number[];
  decode(ids: readonly number[], options?: { skipSpecial?: boolean }): string;
  readonly eosId: number;
  readonly padId: number;
}

export interface EncodedExample {
  /** The example's identity, `task/split/index`: what its dropout masks are keyed by (dropout-plan.ts). */
  key: string;
  task: string;
  source: Int32Array;
  target: Int32Array;
}

export interface LengthLimits {
  maxSourceLength: number;
  maxTargetLength: number;
}

/** Truncates to `max` ids keeping the final </s>, as the official codes' tokenizers do with truncation on. */
function truncate(ids: number[], max: number, eos: number): Int32Array {
  if (ids.length <= max) return Int32Array.from(ids);
  const out = Int32Array.from(ids.slice(0, max));
  if (ids[ids.length - 1] === eos) out[max - 1] = eos;
  return out;
}

/** Tokenizes examples once and caches them by (task, split, index). */
export class ExampleEncoder {
  private readonly cache = new Map<string, EncodedExample>();

  constructor(
    readonly tokenizer: TextEncoder,
    readonly limits: LengthLimits,
  ) {}

  encode(key: string, task: string, source: string, target: string): EncodedExample {
    const hit = this.cache.get(key);
    if (hit) return hit;
    const t = this.tokenizer;
    const e: EncodedExample = {
      key,
      task,
      source: truncate(t.encode(source), this.limits.maxSourceLength, t.eosId),
      target: truncate(t.encode(target), this.limits.maxTargetLength, t.eosId),
    };
    this.cache.set(key, e);
    return e;
  }
}

/** Pads a list of examples to the longest source/target in it and builds the batch tensors. */
export function makeBatch(examples: readonly EncodedExample[], padId: number): PromptBatch {
  const B = examples.length;
  if (B === 0) throw new Error('makeBatch: empty batch');
  const L = Math.max(...examples.map((e) => e.source.length));
  const T = Math.max(...examples.map((e) => e.target.length));
  const ids = new Int32Array(B * L).fill(padId);
  const mask = new Float32Array(B * L);
  const labels = new Int32Array(B * T).fill(padId);
  const labelMask = new Float32Array(B * T);
  examples.forEach((e, b) => {
    ids.set(e.source, b * L);
    mask.fill(1, b * L, b * L + e.source.length);
    labels.set(e.target, b * T);
    labelMask.fill(1, b * T, b * T + e.target.length);
  });
  return {
    inputIds: tf.tensor2d(ids, [B, L], 'int32'),
    attentionMask: tf.tensor2d(mask, [B, L]),
    labels: tf.tensor2d(labels, [B, T], 'int32'),
    labelMask: tf.tensor2d(labelMask, [B, T]),
    tasks: examples.map((e) => e.task),
  };
}

export function disposeBatch(batch: PromptBatch): void {
  tf.dispose([batch.inputIds, batch.attentionMask, batch.labels, batch.labelMask]);
}
