/**
 * Options and set-up shared by the commands that run a bank version (`eval`, `predict`, `serve`): the bank, the
 * job config the version was trained with, the backend, and the backbone + version loaded from them.
 */
import * as fs from 'node:fs';
import { selectBackend } from '../backend/index.js';
import { openBankStore, PromptBank } from '../bank/index.js';
import { demoJob } from '../config/demo-job.js';
import { JOB_ATTACHMENT, type JobConfig, parseJobConfig, readJobConfig } from '../config/job-config.js';
import { loadT5Model } from '../model/load-t5.js';
import type { T5Model } from '../model/t5/index.js';
import { loadTokenizer, type Tokenizer } from '../model/tokenizer/index.js';
import { EVAL_MODES, type EvalMode } from '../train/evaluate.js';
import { type CliContext, type CliOption, optInt, optString, UsageError } from './command.js';

export const VERSION_OPTIONS: CliOption[] = [
  {
    name: 'bank',
    type: 'string',
    value: 'DIR',
    description: 'directory bank (default: $PROMPTMESH_BANK)',
  },
  { name: 'nats', type: 'string', value: 'URL', description: 'use the JetStream bank on this NATS server' },
  {
    name: 'bucket-prefix',
    type: 'string',
    value: 'P',
    description: 'JetStream bucket prefix',
    default: 'promptmesh',
  },
  {
    name: 'config',
    type: 'string',
    value: 'FILE',
    description:
      "the job config the version was trained with (default: the version's job.json, else the demo job)",
  },
  {
    name: 'stage',
    type: 'string',
    value: 'NAME',
    description: 'the stage that made the version (default: the one the version names)',
  },
  {
    name: 'mode',
    type: 'string',
    value: 'M',
    description: "generate | rank (default: the stage's evalMode)",
  },
  { name: 'backend', type: 'string', value: 'NAME', description: 'node-gpu | node | wasm | cpu | auto' },
];

export const VERSION_HELP = `
VERSION is a bank version: a full id, a unique id prefix (4+ hex digits), a tag (each stage's final version is
tagged JOB.STAGE), or JOB@head. A version records its method config only by hash, so the job config it was
trained with says which method, tasks and backbone to rebuild it with: --config JOB.json, else the job the version
recorded (its job.json attachment, on versions trained by up/coordinator), else the demo job. A version made with
another method config is refused.`;

/**
 * The job a version is run with: --config when given; else the resolved job the version records (its `job.json`
 * attachment, written by the runtime since run history existed); else the demo job.
 */
export async function readVersionJob(
  ctx: CliContext,
  bank: PromptBank,
  ref: string,
): Promise<{ job: JobConfig; source: string }> {
  const file = optString(ctx, 'config');
  if (file) return { job: readJobConfig(file), source: file };
  const bytes = await bank.attachment(ref, JOB_ATTACHMENT);
  if (!bytes) return { job: demoJob(), source: 'the demo job' };
  const source = `the job recorded with version ${ref} (${JOB_ATTACHMENT})`;
  const job = parseJobConfig(JSON.parse(new TextDecoder().decode(bytes)), { source });
  if (!fs.existsSync(job.backbone.checkpoint)) {
    throw new UsageError(
      `${source} names the backbone ${job.backbone.checkpoint}, which is not on this machine: pass the job config with the backbone's path here (--config JOB.json)`,
    );
  }
  return { job, source };
}

export function readMode(ctx: CliContext): EvalMode | undefined {
  const m = optString(ctx, 'mode');
  if (m === undefined) return undefined;
  if (!(EVAL_MODES as readonly string[]).includes(m))
    throw new UsageError(`--mode expects one of ${EVAL_MODES.join(', ')}, got '${m}'`);
  return m as EvalMode;
}

export function readBatchSize(ctx: CliContext): number | undefined {
  const n = optInt(ctx, 'batch-size');
  if (n !== undefined && n < 1) throw new UsageError(`--batch-size expects an integer >= 1, got ${n}`);
  return n;
}

export interface OpenedVersionBank {
  bank: PromptBank;
  /** The NATS connection of a JetStream bank (announcements arrive on it), else null. */
  nc: import('nats').NatsConnection | null;
  close(): Promise<void>;
}

export async function openVersionBank(ctx: CliContext): Promise<OpenedVersionBank> {
  const dir = optString(ctx, 'bank') ?? process.env.PROMPTMESH_BANK;
  const natsUrl = optString(ctx, 'nats');
  if (!dir && !natsUrl) throw new UsageError('give the bank: --bank DIR (or $PROMPTMESH_BANK) or --nats URL');
  if (optString(ctx, 'bank') && natsUrl) throw new UsageError('give either --bank or --nats, not both');
  const opened = await openBankStore(
    natsUrl
      ? { natsUrl, bucketPrefix: optString(ctx, 'bucket-prefix') ?? 'promptmesh' }
      : { dir: dir as string, create: false },
  );
  const bank = new PromptBank(opened.store, {
    onWarning: (m) => ctx.stderr.write(`promptmesh: bank warning: ${m}\n`),
  });
  return { bank, nc: opened.nc, close: () => opened.close() };
}

/** Selects the backend and loads the job's backbone and tokenizer. */
export async function loadBackbone(
  ctx: CliContext,
  job: JobConfig,
): Promise<{ model: T5Model; tokenizer: Tokenizer }> {
  await selectBackend({ requested: optString(ctx, 'backend'), log: (l) => ctx.stderr.write(`${l}\n`) });
  const tokenizer = await loadTokenizer(job.backbone.tokenizer);
  const { model, warnings } = loadT5Model(job.backbone.checkpoint);
  for (const w of warnings) ctx.stderr.write(`warning: ${w}\n`);
  return { model, tokenizer };
}
