import { connect, type NatsConnection } from 'nats';
import { openServedVersion } from '../../infer/index.js';
import {
  DEFAULT_SERVER_OPTIONS,
  ServeTelemetry,
  startPredictServer,
  VersionFollower,
} from '../../serve/index.js';
import { type CliCommand, optInt, optString, UsageError } from '../command.js';
import { LOG_OPTIONS, readLogger } from '../log-options.js';
import {
  loadBackbone,
  openVersionBank,
  readMode,
  readVersionJob,
  VERSION_HELP,
  VERSION_OPTIONS,
} from '../version-options.js';

export const command: CliCommand = {
  path: ['serve'],
  summary:
    'Serve a bank version over HTTP (JSON predict API, batching, health, metrics); follows a moving tag',
  usage:
    '(--bank DIR | --nats URL) VERSION [--config JOB.json] [--port 8080] [--host H] [--max-batch N] [--max-wait-ms MS]',
  description: `${VERSION_HELP}

Endpoints (docs/serving.md):
  POST /v1/predict  {"task": "demo-dining", "input": "dining review: the soup was cold ."}
                    or {"instances": [{"task": ..., "input": ...}, ...]}  (tasks mixed freely)
  GET  /v1/version  the version served, its stage, method and tasks
  GET  /healthz, /readyz, /metrics (Prometheus: request latency, batch sizes, examples/s)
Rows of concurrent requests are batched into one forward pass (up to --max-batch rows, waiting at most
--max-wait-ms for more). When VERSION is a tag or JOB@head, the server moves to the version it names as soon as it
moves: on the bank's NATS announcements (--nats, or --watch-nats for a folder bank next to a running job) and by
resolving it again every --poll-ms. Bad requests get a 4xx with a reason. SIGINT/SIGTERM stop it.`,
  examples: [
    'promptmesh serve --bank promptmesh-bank demo.targets --port 8080 &',
    `curl -s localhost:8080/v1/predict -H 'content-type: application/json' -d '{"task":"demo-dining","input":"dining review: the soup was cold ."}'`,
    'promptmesh serve --nats nats://127.0.0.1:4222 demo@head --max-batch 64 --max-wait-ms 10',
  ],
  options: [
    ...VERSION_OPTIONS,
    { name: 'host', type: 'string', value: 'H', description: 'interface to bind', default: '127.0.0.1' },
    { name: 'port', type: 'string', value: 'N', description: 'port (0 = any free one)', default: '8080' },
    {
      name: 'max-batch',
      type: 'string',
      value: 'N',
      description: 'rows per forward pass (and per request)',
      default: String(DEFAULT_SERVER_OPTIONS.batcher.maxBatch),
    },
    {
      name: 'max-wait-ms',
      type: 'string',
      value: 'MS',
      description: 'how long the first queued row waits for others',
      default: String(DEFAULT_SERVER_OPTIONS.batcher.maxWaitMs),
    },
    {
      name: 'poll-ms',
      type: 'string',
      value: 'MS',
      description: 'resolve VERSION again this often (0 = only on NATS announcements)',
      default: '2000',
    },
    {
      name: 'watch-nats',
      type: 'string',
      value: 'URL',
      description: "listen for the job's bank announcements on this NATS server (folder bank)",
    },
    {
      name: 'max-body-bytes',
      type: 'string',
      value: 'N',
      description: 'largest request body',
      default: String(DEFAULT_SERVER_OPTIONS.maxBodyBytes),
    },
    {
      name: 'max-input-chars',
      type: 'string',
      value: 'N',
      description: 'longest input text of one row',
      default: String(DEFAULT_SERVER_OPTIONS.maxInputChars),
    },
    ...LOG_OPTIONS,
  ],
  positionals: { name: 'VERSION', description: 'id, id prefix, tag or JOB@head', min: 1, max: 1 },
  async run(ctx) {
    const positive = (name: string, min: number) => {
      const n = optInt(ctx, name)!;
      if (n < min) throw new UsageError(`--${name} expects an integer >= ${min}, got ${n}`);
      return n;
    };
    const port = positive('port', 0);
    const maxBatch = positive('max-batch', 1);
    const maxWaitMs = positive('max-wait-ms', 0);
    const pollMs = positive('poll-ms', 0);
    const maxBodyBytes = positive('max-body-bytes', 1);
    const maxInputChars = positive('max-input-chars', 1);
    const host = optString(ctx, 'host') ?? '127.0.0.1';
    const mode = readMode(ctx);
    const ref = ctx.positionals[0] as string;
    const log = readLogger(ctx, { role: 'serve' });
    const opened = await openVersionBank(ctx);
    const { job, source } = await readVersionJob(ctx, opened.bank, ref).catch(async (e) => {
      await opened.close();
      throw e;
    });
    let watch: NatsConnection | null = null;
    const cleanup: (() => Promise<void>)[] = [() => opened.close()];
    try {
      const watchUrl = optString(ctx, 'watch-nats');
      if (watchUrl) {
        watch = await connect({ servers: watchUrl.split(','), name: 'promptmesh-serve' });
        const nc = watch;
        cleanup.push(() => nc.drain());
      }
      const { model, tokenizer } = await loadBackbone(ctx, job);
      cleanup.push(async () => model.dispose());
      const telemetry = new ServeTelemetry();
      const follower = new VersionFollower(
        opened.bank,
        ref,
        (id) =>
          openServedVersion(opened.bank, id, job, model, tokenizer, {
            source,
            batchSize: maxBatch,
            ...(optString(ctx, 'stage') ? { stageName: optString(ctx, 'stage') as string } : {}),
            ...(mode ? { mode } : {}),
          }),
        {
          pollMs,
          nc: watch ?? opened.nc,
          log,
          onSwitch: (from, to) => {
            telemetry.version(from, to);
            const m = to.manifest;
            log(
              `${from ? `'${ref}' moved: now serving` : 'serving'} ${m.id.slice(0, 12)} (job ${m.job}, stage ${to.stage.name}, ${m.method}, step ${m.step}; tasks ${to.engine.options.tasks.join(', ')})`,
            );
          },
        },
      );
      await follower.start();
      cleanup.unshift(() => follower.stop());
      const server = await startPredictServer(() => follower.current, telemetry, {
        host,
        port,
        batcher: { maxBatch, maxWaitMs },
        maxBodyBytes,
        maxInputChars,
        maxRowsPerRequest: maxBatch,
      });
      cleanup.unshift(() => server.close());
      log(`listening on ${server.url} (POST /v1/predict; max batch ${maxBatch}, max wait ${maxWaitMs} ms)`);
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          log(`${sig}: stopping`);
          resolve();
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
    } finally {
      for (const f of cleanup) await f().catch(() => {});
    }
    return 0;
  },
};
