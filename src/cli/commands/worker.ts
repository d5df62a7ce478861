import * as os from 'node:os';
import type { NatsConnection } from 'nats';
import { selectBackend } from '../../backend/index.js';
import { routeGrpcLogs } from '../../collective/index.js';
import { RUNTIME_ENV } from '../../config/runtime-env.js';
import { deriveJobKey } from '../../control/message-auth.js';
import { connectNats } from '../../control/nats-connect.js';
import { JOB_COMPLETE, subjects } from '../../control/protocol.js';
import { loadT5Model } from '../../model/load-t5.js';
import { loadTokenizer } from '../../model/tokenizer/index.js';
import { openRuntimeBank } from '../../runtime/runtime-bank.js';
import { threadHeartbeat } from '../../runtime/worker/heartbeat.js';
import { JoinTimeoutError } from '../../runtime/worker/join-wait.js';
import { Worker } from '../../runtime/worker/worker.js';
import { createProcessRegistry, startMetricsServer, WorkerTelemetry } from '../../telemetry/index.js';
import { type CliCommand, type CliContext, optString, UsageError } from '../command.js';
import { LOG_OPTIONS, readLogger, runtimeLogContext } from '../log-options.js';
import { METRICS_OPTIONS, readMetricsListen } from '../metrics-options.js';
import { COMMON_OPTIONS, readBank, readJob, readNats, readToken } from '../runtime-options.js';

export const command: CliCommand = {
  path: ['worker'],
  summary: 'Run a worker of a distributed job (gradients on its shard, all-reduce over gRPC)',
  usage: '--nats URL --bank DIR --token TOKEN [--config JOB.json] [--listen HOST:PORT] [--worker-id ID]',
  description: `
A worker loads the frozen backbone, joins the job over NATS, and for each step computes the gradients of its
shard, all-reduces them with the other workers over gRPC (ring or halving-doubling), applies the identical
AdamW update, and reports. Its collective listener binds --listen (default 127.0.0.1:0, loopback only); on a
cluster use --listen 0.0.0.0:7070 --advertise $(POD_IP):7070. Mutual TLS for the collective: --tls-cert, --tls-key
and --tls-ca.

A worker may start before its coordinator: it keeps asking to join, and says so after 10 s and then every 30 s
(naming the job id and NATS subject). A coordinator exits when its job completes, so a worker started after that
waits for a new coordinator of the same job id; --join-timeout SECONDS makes it give up instead.
Exit codes: 0 the job completed (the coordinator said so), 1 the coordinator stopped the job unfinished, 3 refused
by the coordinator (the reason is printed), 4 no coordinator admitted it within --join-timeout, 130/143 stopped by
SIGINT/SIGTERM while the job runs (so Kubernetes or 'promptmesh up' replaces it).`,
  examples: [
    'promptmesh worker --nats nats://127.0.0.1:4222 --bank ./bank --token s3cret',
    'promptmesh worker --listen 0.0.0.0:7070 --advertise 10.0.3.7:7070 --worker-id worker-0 --backend node-gpu',
  ],
  options: [
    ...COMMON_OPTIONS,
    {
      name: 'worker-id',
      type: 'string',
      value: 'ID',
      description: `stable identity (env ${RUNTIME_ENV.workerId}; default host-pid)`,
    },
    {
      name: 'listen',
      type: 'string',
      value: 'HOST:PORT',
      // No `default` here: a default fills the flag's value and would hide the environment variable.
      description: `collective listener (env ${RUNTIME_ENV.listen}; default 127.0.0.1:0)`,
    },
    {
      name: 'advertise',
      type: 'string',
      value: 'HOST:PORT',
      description: `address peers dial (env ${RUNTIME_ENV.advertise})`,
    },
    { name: 'backend', type: 'string', value: 'NAME', description: 'node-gpu | node | wasm | cpu | auto' },
    {
      name: 'join-timeout',
      type: 'string',
      value: 'SECONDS',
      description: `exit with code 4 when no coordinator admits this worker within SECONDS (env ${RUNTIME_ENV.joinTimeout}; default 0 = keep waiting, with a reminder every 30 s)`,
    },
    {
      name: 'tls-cert',
      type: 'string',
      value: 'FILE',
      description: `PEM certificate (env ${RUNTIME_ENV.tlsCert})`,
    },
    {
      name: 'tls-key',
      type: 'string',
      value: 'FILE',
      description: `PEM private key (env ${RUNTIME_ENV.tlsKey})`,
    },
    {
      name: 'tls-ca',
      type: 'string',
      value: 'FILE',
      description: `PEM CA that signed the peers' certificates; mutual TLS (env ${RUNTIME_ENV.tlsCa})`,
    },
    ...METRICS_OPTIONS,
    ...LOG_OPTIONS,
  ],
  async run(ctx) {
    const job = readJob(ctx);
    const nats = readNats(ctx);
    const bankSpec = readBank(ctx);
    const token = readToken(ctx);
    const workerId =
      optString(ctx, 'worker-id') ?? process.env[RUNTIME_ENV.workerId] ?? `${os.hostname()}-${process.pid}`;
    const listen = optString(ctx, 'listen') || process.env[RUNTIME_ENV.listen] || '127.0.0.1:0';
    const joinTimeoutMs = readJoinTimeoutMs(ctx);
    const m = /^(.*):(\d+)$/.exec(listen);
    if (!m) throw new UsageError(`--listen expects HOST:PORT, got '${listen}'`);
    const pick = (flag: string, env: string) => optString(ctx, flag) ?? process.env[env];
    const cert = pick('tls-cert', RUNTIME_ENV.tlsCert);
    const key = pick('tls-key', RUNTIME_ENV.tlsKey);
    const ca = pick('tls-ca', RUNTIME_ENV.tlsCa);
    if ((cert || key || ca) && !(cert && key && ca)) {
      throw new UsageError('TLS needs --tls-cert, --tls-key and --tls-ca together (the CA verifies peers)');
    }
    let workerRef: Worker | undefined;
    const log = readLogger(ctx, { role: 'worker', job: job.jobId, worker: workerId }).child({}, () =>
      workerRef ? runtimeLogContext(workerRef.status) : {},
    );
    routeGrpcLogs((l) => log.warn(l));
    const metricsListen = readMetricsListen(ctx);
    const telemetry = new WorkerTelemetry(createProcessRegistry());
    let connection: NatsConnection | undefined;
    // Long synchronous steps block the event loop, so the probes answer late during a step: the manifests give
    // them generous timeouts rather than moving the server to a thread.
    const metrics = metricsListen
      ? await startMetricsServer({
          registry: telemetry.registry,
          ...metricsListen,
          live: () =>
            connection?.isClosed()
              ? { ok: false, detail: 'the NATS connection is closed' }
              : { ok: true, detail: workerRef ? 'running' : 'starting' },
          ready: () =>
            workerRef?.joined
              ? { ok: true, detail: 'joined the job' }
              : {
                  ok: false,
                  detail: workerRef ? 'not joined (waiting for the coordinator)' : 'loading the model',
                },
        })
      : undefined;
    if (metrics) log(`metrics on ${metrics.url}`);
    await selectBackend({ requested: optString(ctx, 'backend'), log });
    const tokenizer = await loadTokenizer(job.backbone.tokenizer);
    const { model } = loadT5Model(job.backbone.checkpoint);
    const nc = await connectNats(nats, `promptmesh-worker-${workerId}`);
    connection = nc;
    const bank = await openRuntimeBank(bankSpec.kind === 'dir' ? bankSpec : { kind: 'nats' }, nc);
    const advertise = optString(ctx, 'advertise') ?? process.env[RUNTIME_ENV.advertise];
    const worker = new Worker(
      nc,
      bank,
      job,
      model,
      tokenizer,
      {
        workerId,
        token,
        host: m[1]!,
        port: Number(m[2]),
        ...(advertise ? { advertise } : {}),
        heartbeatMs: 500,
        collectiveTimeoutMs: 10_000,
        joinTimeoutMs,
        ...(cert && key && ca ? { tls: { certFile: cert, keyFile: key, caFile: ca } } : {}),
        log,
      },
      threadHeartbeat(nats, subjects(job.jobId).heartbeat, workerId, 500, deriveJobKey(token, job.jobId)),
      telemetry,
    );
    workerRef = worker;
    let signal: NodeJS.Signals | undefined;
    const onSignal = (s: NodeJS.Signals) => {
      signal ??= s;
      void worker.stop(`interrupted by ${s}`);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    await worker.start();
    const reason = await worker.done;
    log(`stopped: ${reason}`);
    await nc.drain().catch(() => {});
    await metrics?.close();
    model.dispose();
    return workerExitCode(reason, { ...(signal ? { signal } : {}), error: worker.error });
  },
};

/**
 * The worker's exit code, for whatever restarts it (`promptmesh up`, a Kubernetes Job or JobSet): 0 only when the
 * coordinator stopped it because the job completed, so nothing restarts a worker that has finished and every
 * other end is a failure to retry; 3 refused (the reason is printed; retrying will not help); 4 join timeout;
 * 128 + the signal's number when a signal stopped it first (143 = SIGTERM: an evicted pod is replaced); 1 when
 * the coordinator stopped the job unfinished.
 */
export function workerExitCode(
  reason: string,
  how: { signal?: NodeJS.Signals; error?: Error | undefined } = {},
): number {
  if (reason === JOB_COMPLETE) return 0;
  if (how.error instanceof JoinTimeoutError) return 4;
  if (reason.startsWith('refused')) return 3;
  if (how.signal) return 128 + (os.constants.signals[how.signal] ?? 15);
  return 1;
}

/** --join-timeout (or its environment variable) in milliseconds; 0 = wait forever. */
function readJoinTimeoutMs(ctx: CliContext): number {
  const flag = optString(ctx, 'join-timeout');
  const raw = flag ?? process.env[RUNTIME_ENV.joinTimeout] ?? '0';
  const seconds = raw.trim() === '' ? Number.NaN : Number(raw);
  if (!(Number.isFinite(seconds) && seconds >= 0)) {
    const from = flag === undefined ? ` (from ${RUNTIME_ENV.joinTimeout})` : '';
    throw new UsageError(`--join-timeout expects seconds >= 0 (0 = wait forever), got '${raw}'${from}`);
  }
  return Math.round(seconds * 1000);
}
