import { demoJob } from '../config/demo-job.js';
import { checkStepsOverride, type JobConfig, readJobConfig } from '../config/job-config.js';
import { RUNTIME_ENV } from '../config/runtime-env.js';
import { checkToken, InsecureTokenError, MIN_TOKEN_LENGTH } from '../control/message-auth.js';
import { NATS_ENV, type NatsAuth, natsAuthFromEnv } from '../control/nats-connect.js';
import { checkJobTasks } from '../train/task-source.js';
import { type CliContext, type CliOption, optInt, optString, UsageError } from './command.js';

/** Options shared by `coordinator`, `worker` and `up`. */
export const COMMON_OPTIONS: CliOption[] = [
  {
    name: 'config',
    type: 'string',
    value: 'FILE',
    description: `job config (env ${RUNTIME_ENV.config}; default: the demo job)`,
  },
  { name: 'steps', type: 'string', value: 'N', description: "override every stage's step count" },
  {
    name: 'job-id',
    type: 'string',
    value: 'ID',
    description: "override the config's job id (a new job in the same bank)",
  },
  { name: 'nats', type: 'string', value: 'URL', description: `NATS server (env ${NATS_ENV.url})` },
  { name: 'nats-user', type: 'string', value: 'USER', description: `NATS user (env ${NATS_ENV.user})` },
  {
    name: 'nats-password',
    type: 'string',
    value: 'PW',
    description: `NATS password (env ${NATS_ENV.password})`,
  },
  { name: 'nats-token', type: 'string', value: 'TOKEN', description: `NATS token (env ${NATS_ENV.token})` },
  {
    name: 'nats-creds',
    type: 'string',
    value: 'FILE',
    description: `NATS creds file (env ${NATS_ENV.credsFile})`,
  },
  { name: 'bank', type: 'string', value: 'DIR', description: `prompt bank folder (env ${RUNTIME_ENV.bank})` },
  {
    name: 'bank-nats',
    type: 'boolean',
    description: `keep the bank in NATS JetStream instead of a folder (env ${RUNTIME_ENV.bankNats}=1)`,
  },
  { name: 'token', type: 'string', value: 'TOKEN', description: `join token (env ${RUNTIME_ENV.token})` },
];

export function readJob(ctx: CliContext): JobConfig {
  const file = optString(ctx, 'config') ?? process.env[RUNTIME_ENV.config];
  const steps = optInt(ctx, 'steps');
  if (steps !== undefined) checkStepsOverride(steps);
  const jobId = optString(ctx, 'job-id');
  if (jobId !== undefined && !/^[A-Za-z0-9_-]{1,128}$/.test(jobId)) {
    throw new UsageError(
      `--job-id '${jobId}': use letters, digits, '_' and '-' (it becomes a NATS subject token)`,
    );
  }
  let job = file ? readJobConfig(file) : demoJob(steps !== undefined ? { steps } : {});
  if (steps !== undefined && file)
    job = { ...job, stages: job.stages.map((s) => ({ ...s, train: { ...s.train, steps } })) };
  if (file) checkJobTasks(job, file);
  return jobId ? { ...job, jobId } : job;
}

export function readNats(ctx: CliContext): NatsAuth {
  const flags: Partial<NatsAuth> = {};
  const set = (k: keyof NatsAuth, flag: string) => {
    const v = optString(ctx, flag);
    if (v) flags[k] = v;
  };
  set('url', 'nats');
  set('user', 'nats-user');
  set('password', 'nats-password');
  set('token', 'nats-token');
  set('credsFile', 'nats-creds');
  const auth = natsAuthFromEnv(process.env, flags);
  if (!auth)
    throw new UsageError(
      `no NATS server: pass --nats URL or set ${NATS_ENV.url} (e.g. nats://127.0.0.1:4222)`,
    );
  return auth;
}

export type BankSpec = { kind: 'dir'; dir: string } | { kind: 'nats' };

export function readBank(ctx: CliContext): BankSpec {
  const dir = optString(ctx, 'bank') ?? process.env[RUNTIME_ENV.bank];
  const useNats = ctx.values['bank-nats'] === true || process.env[RUNTIME_ENV.bankNats] === '1';
  if (useNats && dir) throw new UsageError('give either --bank DIR or --bank-nats, not both');
  if (useNats) return { kind: 'nats' };
  if (!dir)
    throw new UsageError(`no prompt bank: pass --bank DIR (or --bank-nats), or set ${RUNTIME_ENV.bank}`);
  return { kind: 'dir', dir };
}

export function readToken(ctx: CliContext): string {
  const flag = optString(ctx, 'token');
  const t = flag ?? process.env[RUNTIME_ENV.token];
  if (!t)
    throw new UsageError(
      `a join token is required: pass --token or set ${RUNTIME_ENV.token} (a shared secret of at least ${MIN_TOKEN_LENGTH} characters, e.g. \`openssl rand -hex 32\`)`,
    );
  try {
    return checkToken(
      t,
      flag !== undefined ? 'the join token (--token)' : `the join token (${RUNTIME_ENV.token})`,
    );
  } catch (e) {
    if (e instanceof InsecureTokenError) throw new UsageError(e.message);
    throw e;
  }
}
