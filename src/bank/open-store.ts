/** Opens the store a command line or process config names: a directory, or a NATS server's JetStream. */
import { type ConnectionOptions, connect, type NatsConnection } from 'nats';
import { DirectoryStore } from './directory-store.js';
import { BankInputError, BankStoreError } from './errors.js';
import { JetStreamStore } from './jetstream-store.js';
import type { BankStore } from './store.js';

export interface OpenBankStoreOptions {
  /** Directory store root. */
  dir?: string;
  /** NATS server URL(s), comma-separated: use the JetStream store. */
  natsUrl?: string;
  bucketPrefix?: string;
  /** Directory store: create the bank if missing (default true; false for read-only commands). */
  create?: boolean;
  /** Extra connection options (credentials, TLS) for the NATS connection. */
  natsOptions?: Partial<ConnectionOptions>;
}

export interface OpenedBankStore {
  store: BankStore;
  /** The connection opened for a JetStream store (null for a directory). */
  nc: NatsConnection | null;
  close(): Promise<void>;
}

export async function openBankStore(opts: OpenBankStoreOptions): Promise<OpenedBankStore> {
  if (opts.dir && opts.natsUrl)
    throw new BankInputError('give either a bank directory or a NATS URL, not both');
  if (opts.dir) {
    const store = new DirectoryStore(opts.dir, { create: opts.create ?? true });
    return { store, nc: null, close: () => store.close() };
  }
  if (opts.natsUrl) {
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: opts.natsUrl.split(',').map((s) => s.trim()),
        name: 'promptmesh-bank',
        ...opts.natsOptions,
      });
    } catch (e) {
      throw new BankStoreError(`cannot connect to NATS at ${opts.natsUrl}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    try {
      const storeOpts = opts.bucketPrefix === undefined ? {} : { bucketPrefix: opts.bucketPrefix };
      const store = await JetStreamStore.open(nc, storeOpts);
      return {
        store,
        nc,
        close: async () => {
          await store.close();
          await nc.drain();
        },
      };
    } catch (e) {
      await nc.close();
      throw e;
    }
  }
  throw new BankInputError('no bank given: pass a bank directory (--bank DIR) or a NATS URL (--nats URL)');
}
