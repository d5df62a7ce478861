import type { NatsConnection } from 'nats';
import { announceVersion, DirectoryStore, JetStreamStore, PromptBank } from '../bank/index.js';
import type { TensorMap } from './replica-state.js';

/** What the runtime needs from the prompt bank. */
export interface RuntimeBank {
  commit(input: {
    job: string;
    parent: string | null;
    /** Head the compare-and-set expects (default: parent). */
    expectHead?: string | null;
    step: number;
    method: string;
    config: unknown;
    tensors: TensorMap;
    metrics: Record<string, number>;
    tags?: string[];
    extra?: Record<string, unknown>;
    /** Files kept with the version: the run history and the resolved job (bank attachments). */
    attachments?: Record<string, { data: Uint8Array; mediaType: string }>;
  }): Promise<{ id: string }>;
  load(id: string): Promise<TensorMap>;
  manifest(id: string): Promise<RuntimeManifest>;
  head(job: string): Promise<RuntimeManifest | undefined>;
  /** A version and its ancestors, newest first (the run history walks it: train/history.ts readBankHistory). */
  lineage(ref: string): Promise<readonly { id: string }[]>;
  /** A version's attachment, null when it has none of that name. */
  attachment(id: string, name: string): Promise<Uint8Array | null>;
}

/** The part of a version's manifest the runtime reads. */
export interface RuntimeManifest {
  id: string;
  job: string;
  step: number;
  parent: string | null;
  /** Evaluation results recorded with the version (empty when it was not evaluated). */
  metrics: Record<string, number>;
  extra?: Record<string, unknown>;
}

export type BankLocation = { kind: 'dir'; dir: string } | { kind: 'nats'; bucketPrefix?: string };

/**
 * The bank the coordinator and workers share: a folder (one machine, or a shared volume) or NATS JetStream.
 * Every commit is announced on NATS (`promptmesh.<job>.bank.version`).
 */
export async function openRuntimeBank(where: BankLocation, nc: NatsConnection): Promise<RuntimeBank> {
  const store =
    where.kind === 'dir'
      ? new DirectoryStore(where.dir)
      : await JetStreamStore.open(nc, where.bucketPrefix ? { bucketPrefix: where.bucketPrefix } : {});
  const bank = new PromptBank(store);
  return {
    async commit(input) {
      const m = await bank.commit(input);
      await announceVersion(nc, m).catch(() => {});
      return m;
    },
    load: (id) => bank.load(id),
    manifest: (id) => bank.get(id),
    async head(job) {
      return (await bank.head(job)) ?? undefined;
    },
    lineage: (ref) => bank.lineage(ref),
    attachment: (id, name) => bank.attachment(id, name),
  };
}
