import type { TensorMap } from './worker-state.js';

/** What the runtime needs from the prompt bank (implemented by src/bank's PromptBank). */
export interface RuntimeBank {
  commit(input: {
    job: string;
    parent: string | null;
    step: number;
    method: string;
    config: unknown;
    tensors: TensorMap;
    metrics: Record<string, number>;
    tags?: string[];
    extra?: Record<string, unknown>;
  }): Promise<{ id: string }>;
  load(id: string): Promise<TensorMap>;
  manifest(id: string): Promise<{ id: string; step: number; extra?: Record<string, unknown> }>;
  head(job: string): Promise<{ id: string; step: number; extra?: Record<string, unknown> } | undefined>;
}
