import { randomUUID } from 'node:crypto';
import * as os from 'node:os';
import type { NatsConnection } from 'nats';
import { RUNTIME_ENV } from '../../config/runtime-env.js';
import { connectNats } from '../../control/nats-connect.js';
import { loadTokenizer } from '../../model/tokenizer/index.js';
import { Coordinator } from '../../runtime/coordinator/coordinator.js';
import { CoordinatorLease } from '../../runtime/coordinator/lease.js';
import { openRuntimeBank } from '../../runtime/runtime-bank.js';
import { CoordinatorTelemetry, createProcessRegistry, startMetricsServer } from '../../telemetry/index.js';
import { type CliCommand, type CliContext, optInt, optString, UsageError } from '../command.js';
import { LOG_OPTIONS, progressSink, readLogger, runtimeLogContext } from '../log-options.js';
import { METRICS_OPTIONS, readMetricsListen } from '../metrics-options.js';
import { COMMON_OPTIONS, readBank, readJob, readNats, readToken } from '../runtime-options.js';

/** An integer from the environment (undefined when unset); a non-integer is a usage error naming the variable. */
function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v.trim() === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`${name} expects an integer, got '${v}'`);
  return n;
}

export const command: CliCommand = {
  path: ['coordinator'],
  summary: 'Run the coordinator of a distributed job (membership, step planning, commits, bank versions)',
  usage: '--nats URL --bank DIR --token TOKEN [--config JOB.json] [--min-workers N] [--max-workers N]',
  description: `
The coordinator admits workers that present the job id and join token, forms generations (ranks and ring
order), plans each step's global batch and shards it across the workers by tokens, commits steps whose replicas
agree, and has rank 0 write a bank version every --checkpoint-every steps and at the end of each stage. It holds
no training state: restarted, it resumes from the bank head, or from the later step its re-joined workers still
hold in memory (all at one checksum), so a lost coordinator costs at most the step in flight. --from VERSION
resumes from any earlier version instead (any number of workers; a larger --steps continues a finished stage).
Before admitting workers it checks the digests of the version it resumes from: a corrupt one is not retried, it
exits 1 at once naming the version, the tensor and both digests. It exits 0 when the job completes (or was already
complete), 1 when it stopped the job as failed. SIGINT (Ctrl-C) stops the job and its workers (exit 130); SIGTERM
(an eviction, a supervisor replacing it) exits 143 and leaves the workers running: they keep their state and
re-join the next coordinator.`,
  examples: [
    'promptmesh coordinator --nats nats://127.0.0.1:4222 --bank ./bank --token s3cret --min-workers 2',
    'NATS_URL=nats://nats:4222 PROMPTMESH_BANK=/data/bank PROMPTMESH_JOIN_TOKEN=s3cret promptmesh coordinator --config job.json',
  ],
  options: [
    ...COMMON_OPTIONS,
    {
      name: 'min-workers',
      type: 'string',
      value: 'N',
      description: `start when N workers joined (env ${RUNTIME_ENV.minWorkers}; default 1)`,
    },
    {
      name: 'max-workers',
      type: 'string',
      value: 'N',
      description: `admit at most N (env ${RUNTIME_ENV.maxWorkers}; default 64)`,
    },
    {
      name: 'checkpoint-every',
      type: 'string',
      value: 'K',
      description: 'bank version every K steps',
      default: '20',
    },
    {
      name: 'from',
      type: 'string',
      value: 'VERSION',
      description:
        "resume from this bank version (id, prefix, tag or JOB@head) instead of the job's head; the next version moves the head",
    },
    {
      name: 'join-grace',
      type: 'string',
      value: 'SECONDS',
      description:
        'once --min-workers joined, wait up to SECONDS for --max-workers before the first generation (0 = start at once)',
      default: '0',
    },
    {
      name: 'heartbeat-timeout-ms',
      type: 'string',
      value: 'MS',
      description: 'declare a silent worker dead',
      default: '4000',
    },
    {
      name: 'progress-timeout',
      type: 'string',
      value: 'SECONDS',
      description:
        'declare hung a worker that beats but whose main thread makes no progress (must exceed one step or evaluation)',
      default: '600',
    },
    {
      name: 'lease-ttl',
      type: 'string',
      value: 'S',
      description:
        "the coordinator lease's TTL: a dead coordinator on another host frees the job after this long",
      default: '15',
    },
    {
      name: 'lease-wait',
      type: 'string',
      value: 'S',
      description:
        'wait at most this long for another coordinator of the job to stop (default: as long as it runs)',
    },
    ...METRICS_OPTIONS,
    ...LOG_OPTIONS,
  ],
  async run(ctx) {
    const job = readJob(ctx);
    const nats = readNats(ctx);
    const bankSpec = readBank(ctx);
    const token = readToken(ctx);
    // Flags win over the environment, as for every other option (docs/configuration.md).
    const minWorkers = optInt(ctx, 'min-workers') ?? envInt(RUNTIME_ENV.minWorkers) ?? 1;
    const maxWorkers = optInt(ctx, 'max-workers') ?? envInt(RUNTIME_ENV.maxWorkers) ?? 64;
    if (!(minWorkers >= 1 && maxWorkers >= minWorkers))
      throw new UsageError('need 1 <= --min-workers <= --max-workers');
    let coordRef: Coordinator | undefined;
    const log = readLogger(ctx, { role: 'coordinator', job: job.jobId }).child({}, () =>
      coordRef ? runtimeLogContext(coordRef.status) : {},
    );
    const listen = readMetricsListen(ctx);
    const telemetry = new CoordinatorTelemetry(createProcessRegistry(), {
      minWorkers,
      maxWorkers,
      stageSteps: job.stages.map((s) => s.train.steps),
    });
    let connection: NatsConnection | undefined;
    const metrics = listen
      ? await startMetricsServer({
          registry: telemetry.registry,
          ...listen,
          live: () =>
            connection?.isClosed()
              ? { ok: false, detail: 'the NATS connection is closed' }
              : { ok: true, detail: coordRef ? `phase ${coordRef.status.phase}` : 'starting' },
          ready: () => {
            const phase = coordRef?.status.phase;
            if (!phase) return { ok: false, detail: 'starting (loading the tokenizer, connecting to NATS)' };
            if (connection?.isClosed()) return { ok: false, detail: 'the NATS connection is closed' };
            return phase === 'done'
              ? { ok: false, detail: 'job finished' }
              : { ok: true, detail: `phase ${phase}` };
          },
        })
      : undefined;
    if (metrics) log(`metrics on ${metrics.url}`);
    const tokenizer = await loadTokenizer(job.backbone.tokenizer);
    const nc = await connectNats(nats, `promptmesh-coordinator-${job.jobId}`);
    connection = nc;
    // One coordinator per job (lease.ts): a second one waits for the first to stop, or gives up after
    // --lease-wait; one that loses its lease stops at once, leaving the workers to the holder.
    let lease: CoordinatorLease | undefined;
    try {
      lease = await CoordinatorLease.acquire(nc, job.jobId, {
        ttlMs: positiveSeconds(ctx, 'lease-ttl', 15) * 1000,
        waitMs:
          optString(ctx, 'lease-wait') === undefined
            ? Number.POSITIVE_INFINITY
            : nonNegativeSeconds(ctx, 'lease-wait') * 1000,
        incarnation: randomUUID(),
        log,
        onLost: (reason) => {
          log.error(reason);
          void coordRef?.stop(reason, { tellWorkers: false });
        },
      });
    } catch (e) {
      await nc.drain().catch(() => {});
      await metrics?.close();
      throw e;
    }
    const bank = await openRuntimeBank(bankSpec.kind === 'dir' ? bankSpec : { kind: 'nats' }, nc);
    const progress = progressSink(ctx, log, 2000);
    const coord = new Coordinator(
      nc,
      bank,
      job,
      tokenizer,
      {
        token,
        minWorkers,
        maxWorkers,
        heartbeatMs: 500,
        heartbeatTimeoutMs: optInt(ctx, 'heartbeat-timeout-ms', 4000)!,
        progressTimeoutMs: positiveSeconds(ctx, 'progress-timeout', 600) * 1000,
        checkpointEvery: optInt(ctx, 'checkpoint-every', 20)!,
        resendMs: 3000,
        formTimeoutMs: 60_000,
        joinGraceMs: nonNegativeSeconds(ctx, 'join-grace') * 1000,
        maxFailures: 10,
        ...(optString(ctx, 'from') ? { from: optString(ctx, 'from')! } : {}),
        progress,
        log,
      },
      telemetry,
    );
    coordRef = coord;
    telemetry.attach(() => coord.status);
    // SIGINT (Ctrl-C) stops the job: the workers are told to stop. SIGTERM is how an orchestrator replaces a
    // process (an eviction, a drain, `up` restarting it): the workers keep their state and re-join the next
    // coordinator, and the exit code (143) says it was stopped, not that the job failed.
    let signal: NodeJS.Signals | undefined;
    const onSignal = (s: NodeJS.Signals) => {
      signal ??= s;
      void coord.stop(`coordinator interrupted by ${s}`, { tellWorkers: s === 'SIGINT' });
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      await coord.start();
    } catch (e) {
      // Nothing was announced yet (e.g. the resume point is corrupt): release NATS and the metrics port, then
      // let the CLI print the error and exit 1.
      await lease?.release();
      await nc.drain().catch(() => {});
      await metrics?.close();
      throw e;
    }
    const ok = await coord.done;
    await coord.stop();
    await lease?.release();
    await nc.drain().catch(() => {});
    await metrics?.close();
    if (ok) return 0;
    return signal ? 128 + (os.constants.signals[signal] ?? 15) : 1;
  },
};

function nonNegativeSeconds(ctx: CliContext, name: string): number {
  const v = optString(ctx, name) ?? '0';
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new UsageError(`--${name} expects a number of seconds >= 0, got '${v}'`);
  return n;
}

function positiveSeconds(ctx: CliContext, name: string, fallback: number): number {
  const v = optString(ctx, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(`--${name} expects a positive number of seconds, got '${v}'`);
  return n;
}
