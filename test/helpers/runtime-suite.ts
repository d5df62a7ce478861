/**
 * The set-up every runtime suite shares, registered as the suite's hooks: the fixture (tiny T5, two-stage job, bank
 * folder), a real nats-server, with `reference: true` the single-process run on wasm that the distributed result
 * must equal byte for byte, and after the suite every process it started killed, the server stopped and the folder
 * removed. Call it inside describe(); read its fields inside tests (the before hook sets them).
 */
import { after, before } from 'node:test';
import { selectBackend } from '../../src/backend/index.js';
import { type NatsServerHandle, startNatsServer } from './nats.js';
import {
  type CliProcess,
  type FixtureOptions,
  killAll,
  makeRuntimeFixture,
  type RuntimeFixture,
  referenceRun,
} from './runtime-fixture.js';

export interface RuntimeSuite {
  /** Undefined when SentencePiece's tools are missing: tests skip with SPM_MISSING_MESSAGE. */
  readonly fx: RuntimeFixture | undefined;
  readonly nats: NatsServerHandle;
  /** The single-process run's parameters, per stage (empty without `reference: true`). */
  readonly reference: Map<string, Float32Array>[];
  /** Processes killed after the suite (push what a test starts). */
  readonly procs: CliProcess[];
  /** Pushes one process to `procs` and returns it. */
  track<T extends CliProcess>(p: T): T;
}

export function runtimeSuite(opts: FixtureOptions & { reference?: boolean }): RuntimeSuite {
  const { reference: wantsReference, ...fixture } = opts;
  const suite = {
    fx: undefined as RuntimeFixture | undefined,
    nats: undefined as unknown as NatsServerHandle,
    reference: [] as Map<string, Float32Array>[],
    procs: [] as CliProcess[],
    track<T extends CliProcess>(p: T): T {
      suite.procs.push(p);
      return p;
    },
  };
  before(async () => {
    suite.fx = await makeRuntimeFixture(fixture);
    if (!suite.fx) return;
    suite.nats = await startNatsServer();
    if (!wantsReference) return;
    await selectBackend({ requested: 'wasm' });
    suite.reference = await referenceRun(suite.fx.job());
  });
  after(async () => {
    await killAll(suite.procs);
    await suite.nats?.stop();
    suite.fx?.cleanup();
  });
  return suite;
}
