/**
 * `promptmesh bank ...`: inspect and manage a versioned prompt bank, in a directory (`--bank DIR`) or on NATS
 * JetStream (`--nats URL`).
 */
import * as path from 'node:path';
import {
  BankInputError,
  type ComposeTake,
  configHash,
  type ExpectShapes,
  formatMetrics,
  formatMetricValue,
  isPeftFolder,
  type Manifest,
  openBankStore,
  PromptBank,
  readPeftPromptTuning,
  ShapeMismatchError,
  type VersionDiff,
  type VersionSummary,
  writePeftPromptTuning,
} from '../../bank/index.js';
import { methodFactory, methodNames } from '../../methods/index.js';
import { readT5Config } from '../../model/checkpoint/hf-checkpoint.js';
import {
  type CliCommand,
  type CliContext,
  type CliOption,
  optBool,
  optString,
  UsageError,
} from '../command.js';

export const STORE_OPTIONS: CliOption[] = [
  {
    name: 'bank',
    type: 'string',
    value: 'DIR',
    description: 'directory bank (default: $PROMPTMESH_BANK); created on first write',
  },
  {
    name: 'nats',
    type: 'string',
    value: 'URL',
    description: 'use the JetStream bank on this NATS server instead',
  },
  {
    name: 'bank-nats',
    type: 'boolean',
    description:
      'the JetStream bank, as coordinator and worker name it: on --nats URL or $NATS_URL (env PROMPTMESH_BANK_NATS=1)',
  },
  {
    name: 'bucket-prefix',
    type: 'string',
    value: 'P',
    description: 'JetStream bucket prefix: buckets P_bank and P_blobs',
    default: 'promptmesh',
  },
];

const JSON_OPTION: CliOption = { name: 'json', type: 'boolean', description: 'print JSON instead of text' };

const SHAPE_OPTIONS: CliOption[] = [
  {
    name: 'd-model',
    type: 'string',
    value: 'N',
    description: 'backbone width: refuse tensors whose last dimension is not N',
  },
  {
    name: 'checkpoint',
    type: 'string',
    value: 'DIR',
    description: "read the backbone width from this checkpoint's config.json",
  },
];

export const STORE_HELP = `
The bank is a directory (--bank DIR, or $PROMPTMESH_BANK) or a NATS JetStream server (--nats URL, buckets
<prefix>_bank and <prefix>_blobs; --bank-nats with $NATS_URL also works, as for the coordinator and workers). A VERSION is a full id, a unique id prefix (4+ hex digits), a tag, or
JOB@head.`;

/** `create`: only commands that commit (import, compose) may create a missing directory bank. */
export async function withBank<T>(
  ctx: CliContext,
  fn: (bank: PromptBank) => Promise<T>,
  create = false,
): Promise<T> {
  const bankNats = optBool(ctx, 'bank-nats') || process.env.PROMPTMESH_BANK_NATS === '1';
  const dir = optString(ctx, 'bank') ?? (bankNats ? undefined : process.env.PROMPTMESH_BANK);
  // --nats URL names the JetStream bank; --bank-nats (the coordinator's and worker's flag) says to use it, with
  // --nats or $NATS_URL for the server.
  const natsUrl = optString(ctx, 'nats') ?? (bankNats ? process.env.NATS_URL : undefined);
  if (bankNats && !natsUrl) throw new UsageError('--bank-nats needs a NATS server: --nats URL or $NATS_URL');
  if (!dir && !natsUrl) throw new UsageError('give the bank: --bank DIR (or $PROMPTMESH_BANK) or --nats URL');
  if (optString(ctx, 'bank') && natsUrl)
    throw new UsageError('give either --bank DIR or the JetStream bank (--nats URL / --bank-nats), not both');
  const opened = await openBankStore(
    natsUrl
      ? { natsUrl, bucketPrefix: optString(ctx, 'bucket-prefix') ?? 'promptmesh' }
      : { dir: dir as string, create },
  );
  const bank = new PromptBank(opened.store, {
    onWarning: (m) => ctx.stderr.write(`promptmesh bank: warning: ${m}\n`),
  });
  try {
    return await fn(bank);
  } finally {
    await opened.close();
  }
}

function out(ctx: CliContext, text: string): void {
  ctx.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function json(ctx: CliContext, value: unknown): void {
  out(ctx, JSON.stringify(value, null, 2));
}

function expectShapes(ctx: CliContext): ExpectShapes | undefined {
  const d = optString(ctx, 'd-model');
  const ckpt = optString(ctx, 'checkpoint');
  if (d && ckpt) throw new UsageError('give either --d-model or --checkpoint, not both');
  if (d) {
    const n = Number(d);
    if (!Number.isInteger(n) || n < 1)
      throw new UsageError(`--d-model expects a positive integer, got '${d}'`);
    return n;
  }
  if (ckpt) return readT5Config(ckpt).dModel;
  return undefined;
}

function tags(ctx: CliContext): string[] | undefined {
  const v = ctx.values.tag;
  if (v === undefined) return undefined;
  return (Array.isArray(v) ? v : [v]).map(String);
}

function listOf(ctx: CliContext, name: string): string[] {
  const v = ctx.values[name];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

function short(id: string | null): string {
  return id ? id.slice(0, 12) : '-';
}

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function renderList(versions: VersionSummary[]): string {
  if (versions.length === 0) return '(no versions)';
  const rows = versions.map((v) => [
    `${short(v.id)}${v.head ? '*' : ' '}`,
    v.job,
    String(v.step),
    v.method,
    v.createdAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    String(v.tensors),
    fmtBytes(v.bytes),
    v.tags.join(','),
    formatMetrics(v.metrics),
  ]);
  const header = ['ID', 'JOB', 'STEP', 'METHOD', 'CREATED', 'TENSORS', 'SIZE', 'TAGS', 'METRICS'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line), '(* = head of its job)'].join('\n');
}

function renderManifest(m: Manifest): string {
  const lines = [
    `version   ${m.id}`,
    `job       ${m.job}`,
    `step      ${m.step}`,
    `parent    ${m.parent ?? '(none)'}`,
    `method    ${m.method}`,
    `config    ${m.configHash}`,
    `created   ${m.createdAt}`,
    `tags      ${m.tags.join(', ') || '(none)'}`,
    `metrics   ${formatMetrics(m.metrics) || '(none)'}`,
    'tensors:',
  ];
  for (const [name, t] of Object.entries(m.tensors).sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(
      `  ${name.padEnd(32)} [${t.shape.join(', ')}]`.padEnd(52) +
        `  ${fmtBytes(t.bytes).padStart(10)}  ${t.digest}`,
    );
  }
  const attachments = Object.entries(m.attachments ?? {}).sort(([a], [b]) => a.localeCompare(b));
  if (attachments.length > 0) lines.push('attachments:');
  for (const [name, a] of attachments) {
    lines.push(
      `${`  ${name.padEnd(32)} ${a.mediaType}`.padEnd(52)}  ${fmtBytes(a.bytes).padStart(10)}  ${a.digest}`,
    );
  }
  if (m.extra) lines.push(`extra     ${JSON.stringify(m.extra)}`);
  return lines.join('\n');
}

function renderDiff(d: VersionDiff): string {
  const lines = [`--- ${d.a}`, `+++ ${d.b}`];
  for (const t of d.added) lines.push(`+ ${t.name} [${t.shape.join(', ')}]`);
  for (const t of d.removed) lines.push(`- ${t.name} [${t.shape.join(', ')}]`);
  for (const t of d.changed) {
    const change =
      t.l2 === null
        ? `shape [${t.shapeA.join(', ')}] -> [${t.shapeB.join(', ')}]`
        : `L2 ${t.l2.toPrecision(6)} (|a| ${t.normA.toPrecision(6)}, |b| ${t.normB.toPrecision(6)})`;
    lines.push(`~ ${t.name} ${change}`);
  }
  lines.push(
    `= ${d.unchanged.length} tensor(s) unchanged${d.unchanged.length ? `: ${d.unchanged.join(', ')}` : ''}`,
  );
  if (d.metrics.length) {
    lines.push('metrics:');
    for (const m of d.metrics) {
      const delta = m.delta === null ? '' : ` (${m.delta >= 0 ? '+' : ''}${m.delta.toPrecision(4)})`;
      const show = (v: number | null | undefined) => (typeof v === 'number' ? formatMetricValue(v) : '-');
      lines.push(`  ${m.name}: ${show(m.a)} -> ${show(m.b)}${delta}`);
    }
  }
  return lines.join('\n');
}

function parseTake(spec: string): ComposeTake {
  // VERSION:TENSOR[=AS]; tensor names may contain dots, never ':' or '='.
  const m = /^([^:]+):([^=]+)(?:=(.+))?$/.exec(spec);
  if (!m) throw new UsageError(`--take expects VERSION:TENSOR[=NEW_NAME], got '${spec}'`);
  const take: ComposeTake = { version: m[1] as string, tensor: m[2] as string };
  if (m[3]) take.as = m[3];
  return take;
}

const ls: CliCommand = {
  path: ['bank', 'ls'],
  summary: 'List bank versions, newest first',
  usage: '(--bank DIR | --nats URL) [--job JOB] [--json]',
  description: `${STORE_HELP}

Unreadable manifests (truncated, edited) are reported on stderr and skipped. In text output the head of each
job is marked with '*'. --json prints an array of {id, job, step, parent, method, createdAt, tags, metrics,
tensors, bytes, head}.`,
  examples: [
    'promptmesh bank ls --bank runs/bank',
    'promptmesh bank ls --bank runs/bank --job demo --json',
    'promptmesh bank ls --nats nats://127.0.0.1:4222',
  ],
  options: [
    ...STORE_OPTIONS,
    { name: 'job', type: 'string', value: 'JOB', description: 'only this job' },
    JSON_OPTION,
  ],
  async run(ctx) {
    const job = optString(ctx, 'job');
    const versions = await withBank(ctx, (b) => b.list(job === undefined ? {} : { job }));
    if (optBool(ctx, 'json')) json(ctx, versions);
    else out(ctx, renderList(versions));
    return 0;
  },
};

const show: CliCommand = {
  path: ['bank', 'show'],
  summary: "Print a version's manifest (tensors, digests, metrics)",
  usage: '(--bank DIR | --nats URL) VERSION [--verify] [--json]',
  description: `${STORE_HELP}

--verify also reads every tensor and checks it against its sha256 digest (exit 1 on a corrupt blob).`,
  examples: [
    'promptmesh bank show --bank runs/bank demo@head',
    'promptmesh bank show --bank runs/bank 3fa9c2 --verify --json',
  ],
  options: [
    ...STORE_OPTIONS,
    { name: 'verify', type: 'boolean', description: 'verify every blob' },
    JSON_OPTION,
  ],
  positionals: { name: 'VERSION', description: 'id, id prefix, tag or JOB@head', min: 1, max: 1 },
  async run(ctx) {
    const ref = ctx.positionals[0] as string;
    const m = await withBank(ctx, async (b) => {
      const m = await b.get(ref);
      if (optBool(ctx, 'verify')) await b.load(m.id);
      return m;
    });
    if (optBool(ctx, 'json')) json(ctx, m);
    else
      out(
        ctx,
        `${renderManifest(m)}${optBool(ctx, 'verify') ? '\nverified: every tensor matches its digest' : ''}`,
      );
    return 0;
  },
};

const diff: CliCommand = {
  path: ['bank', 'diff'],
  summary: 'Compare two versions: tensors added, removed, changed (L2 distance) and metrics',
  usage: '(--bank DIR | --nats URL) VERSION_A VERSION_B [--json]',
  description: `${STORE_HELP}

Only tensors whose digests differ are read; each changed tensor shows ||b - a||_2 next to both norms.`,
  examples: [
    'promptmesh bank diff --bank runs/bank best demo@head',
    'promptmesh bank diff --bank runs/bank 3fa9 81c0 --json',
  ],
  options: [...STORE_OPTIONS, JSON_OPTION],
  positionals: { name: 'VERSION_A VERSION_B', description: 'the two versions to compare', min: 2, max: 2 },
  async run(ctx) {
    const [a, b] = ctx.positionals as [string, string];
    const d = await withBank(ctx, (bank) => bank.diff(a, b));
    if (optBool(ctx, 'json')) json(ctx, d);
    else out(ctx, renderDiff(d));
    return 0;
  },
};

const tag: CliCommand = {
  path: ['bank', 'tag'],
  summary: 'Name a version with a tag (or move / delete a tag)',
  usage: '(--bank DIR | --nats URL) (VERSION TAG [--force] | --delete TAG)',
  description: `${STORE_HELP}

Tags are letters, digits, '_', '-' and single dots (best, v1.2). A tag that already names another version is
moved only with --force.`,
  examples: [
    'promptmesh bank tag --bank runs/bank demo@head best',
    'promptmesh bank tag --bank runs/bank 3fa9c2 best --force',
    'promptmesh bank tag --bank runs/bank --delete best',
  ],
  options: [
    ...STORE_OPTIONS,
    { name: 'force', type: 'boolean', description: 'move the tag if it names another version' },
    { name: 'delete', type: 'string', value: 'TAG', description: 'delete this tag' },
  ],
  positionals: { name: 'VERSION TAG', description: 'the version and the tag to give it', max: 2 },
  async run(ctx) {
    const del = optString(ctx, 'delete');
    if (del !== undefined) {
      if (ctx.positionals.length > 0) throw new UsageError('--delete TAG takes no other arguments');
      const removed = await withBank(ctx, (b) => b.untag(del));
      out(ctx, removed ? `deleted tag ${del}` : `no tag ${del}`);
      return removed ? 0 : 1;
    }
    if (ctx.positionals.length !== 2) throw new UsageError('expected VERSION TAG');
    const [ref, name] = ctx.positionals as [string, string];
    const m = await withBank(ctx, (b) => b.tag(ref, name, { force: optBool(ctx, 'force') }));
    out(ctx, `${name} -> ${m.id}`);
    return 0;
  },
};

const exportCmd: CliCommand = {
  path: ['bank', 'export'],
  summary: 'Write a version as tensors.safetensors + manifest.json, or a task prompt as a PEFT adapter',
  usage:
    '(--bank DIR | --nats URL) VERSION --out DIR [--format promptmesh|peft --task T --checkpoint DIR] [--json]',
  description: `${STORE_HELP}

Every tensor is verified against its digest before it is written. The folder can be read by any safetensors
reader, and brought into another bank with 'promptmesh bank import'.

--format peft writes one task's prompt as a Hugging Face PEFT prompt-tuning adapter (adapter_config.json with
peft_type PROMPT_TUNING, task_type SEQ_2_SEQ_LM; adapter_model.safetensors with prompt_embeddings), which
PeftModel.from_pretrained loads on the backbone named by --checkpoint (written as base_model_name_or_path, or
--base-model). --task picks the task's prompt (prompt tuning: prompt.TASK, or the shared prompt); --tensor picks
any 2-D prompt tensor instead (e.g. one of an ATTEMPT version's source prompts). Methods whose prompt for a task is
built per input (ATTEMPT's attention mixture, TPT/SPT retrieval) cannot be one PEFT prompt and are refused.`,
  examples: [
    'promptmesh bank export --bank runs/bank best --out exports/best',
    'promptmesh bank export --bank promptmesh-bank demo.sources --format peft --task demo-sentiment --checkpoint assets/demo-backbone --out exports/sentiment-peft',
  ],
  options: [
    ...STORE_OPTIONS,
    { name: 'out', type: 'string', value: 'DIR', description: 'folder to write (created if missing)' },
    { name: 'format', type: 'string', value: 'F', description: 'promptmesh | peft', default: 'promptmesh' },
    { name: 'task', type: 'string', value: 'T', description: 'peft: the task whose prompt to write' },
    { name: 'tensor', type: 'string', value: 'NAME', description: 'peft: write this 2-D tensor instead' },
    {
      name: 'checkpoint',
      type: 'string',
      value: 'DIR',
      description: 'peft: the Hugging Face T5 folder the prompt was trained on',
    },
    {
      name: 'base-model',
      type: 'string',
      value: 'NAME',
      description: 'peft: base_model_name_or_path to write (default: --checkpoint, absolute)',
    },
    JSON_OPTION,
  ],
  positionals: { name: 'VERSION', description: 'id, id prefix, tag or JOB@head', min: 1, max: 1 },
  async run(ctx) {
    const dir = optString(ctx, 'out');
    if (!dir) throw new UsageError('--out DIR is required');
    const format = optString(ctx, 'format') ?? 'promptmesh';
    if (format !== 'promptmesh' && format !== 'peft')
      throw new UsageError(`--format expects promptmesh or peft, got '${format}'`);
    const ref = ctx.positionals[0] as string;
    if (format === 'peft') {
      const ckpt = optString(ctx, 'checkpoint');
      if (!ckpt)
        throw new UsageError('--format peft needs --checkpoint DIR (the backbone the prompt was trained on)');
      const cfg = readT5Config(ckpt);
      const r = await withBank(ctx, async (b) => {
        const m = await b.get(ref);
        const name = peftTensorName(m, optString(ctx, 'task'), optString(ctx, 'tensor'));
        const t = (await b.load(m.id, { names: [name] })).get(name)!;
        const files = writePeftPromptTuning(
          dir,
          t,
          {
            nameOrPath: optString(ctx, 'base-model') ?? path.resolve(ckpt),
            dModel: cfg.dModel,
            numLayers: cfg.numLayers,
            numHeads: cfg.numHeads,
          },
          { 'promptmesh.version': m.id, 'promptmesh.tensor': name },
        );
        return { id: m.id, tensor: name, files };
      });
      if (optBool(ctx, 'json')) json(ctx, r);
      else
        out(
          ctx,
          `exported ${r.tensor} of ${r.id} as a PEFT prompt-tuning adapter\n${r.files.map((f) => `  ${f}`).join('\n')}`,
        );
      return 0;
    }
    const r = await withBank(ctx, (b) => b.export(ref, dir));
    if (optBool(ctx, 'json')) json(ctx, { id: r.manifest.id, files: r.files });
    else out(ctx, `exported ${r.manifest.id}\n${r.files.map((f) => `  ${f}`).join('\n')}`);
    return 0;
  },
};

/**
 * The tensor of version `m` that is `task`'s whole prompt: the method says which (MethodFactory.fixedTaskPrompt);
 * a method that builds prompts per input is refused; an unregistered method (an import, a composition) is read by
 * prompt tuning's names (prompt.TASK, then prompt).
 */
function peftTensorName(m: Manifest, task: string | undefined, tensor: string | undefined): string {
  const prompts = Object.entries(m.tensors)
    .filter(([n, t]) => t.shape.length === 2 && !n.startsWith('optim.'))
    .map(([n]) => n);
  if (tensor !== undefined) {
    if (!prompts.includes(tensor))
      throw new BankInputError(
        `version ${m.id.slice(0, 12)} has no 2-D tensor '${tensor}' (it has ${prompts.join(', ')})`,
      );
    return tensor;
  }
  if (task === undefined) throw new UsageError('--format peft needs --task T (or --tensor NAME)');
  const factory = methodNames().includes(m.method) ? methodFactory(m.method) : undefined;
  if (factory && !factory.fixedTaskPrompt) {
    throw new BankInputError(
      `version ${m.id.slice(0, 12)} holds method '${m.method}' (${factory.summary}): its prompt for a task is built for each input ` +
        "(a per-input mixture or retrieval), which PEFT's prompt tuning, one fixed prompt per task, cannot express. " +
        `Export one of its fixed prompts with --tensor NAME (${prompts.join(', ')}), or a prompt-tuning version`,
    );
  }
  const byName = (names: readonly string[], t: string) =>
    names.includes(`prompt.${t}`) ? `prompt.${t}` : names.includes('prompt') ? 'prompt' : undefined;
  const name = (factory?.fixedTaskPrompt ?? byName)(prompts, task);
  if (name === undefined)
    throw new BankInputError(
      `version ${m.id.slice(0, 12)} has no prompt for task '${task}' (its prompts: ${prompts.join(', ')})`,
    );
  return name;
}

const importCmd: CliCommand = {
  path: ['bank', 'import'],
  summary: 'Commit an exported folder (or a .safetensors file) as a new version of a job',
  usage: '(--bank DIR | --nats URL) SOURCE --job JOB [--d-model N | --checkpoint DIR] [--tag T] [--json]',
  description: `${STORE_HELP}

SOURCE is a folder written by 'bank export' (tensors.safetensors, optionally manifest.json), a .safetensors
file, or a Hugging Face PEFT prompt-tuning adapter folder (adapter_config.json + adapter_model.safetensors): its
encoder prompt becomes tensor prompt.TASK (--task) or --tensor NAME of a prompt-tuning version, ready to be a
source prompt of ATTEMPT or a SPoT initialisation (initFrom), or to be run with 'predict'/'serve'. PEFT adapters of
other kinds (LoRA, prefix tuning) are refused. The new version goes on top of JOB's head. With manifest.json, its step, method, metrics and config hash
are kept and every tensor must match its recorded digest. F16/BF16 tensors are widened to F32.
With --d-model or --checkpoint, a tensor whose last dimension does not fit the backbone is refused, naming both
shapes.`,
  examples: [
    'promptmesh bank import --bank runs/bank exports/best --job rte-from-best --checkpoint models/t5-base',
    'promptmesh bank import --bank runs/bank prompt.safetensors --job mine --d-model 768 --tag imported',
    'promptmesh bank import --bank runs/bank exports/sentiment-peft --job from-peft --task demo-sentiment --checkpoint assets/demo-backbone',
  ],
  options: [
    ...STORE_OPTIONS,
    { name: 'job', type: 'string', value: 'JOB', description: 'job to commit the import to' },
    ...SHAPE_OPTIONS,
    {
      name: 'method',
      type: 'string',
      value: 'NAME',
      description: 'method recorded (default: from manifest.json or "imported")',
    },
    {
      name: 'step',
      type: 'string',
      value: 'N',
      description: 'step recorded (default: from manifest.json or 0)',
    },
    { name: 'task', type: 'string', value: 'T', description: 'PEFT folder: name the prompt prompt.T' },
    { name: 'tensor', type: 'string', value: 'NAME', description: 'PEFT folder: name the prompt NAME' },
    {
      name: 'tag',
      type: 'string',
      value: 'TAG',
      description: 'tag the new version (repeatable)',
      multiple: true,
    },
    JSON_OPTION,
  ],
  positionals: { name: 'SOURCE', description: 'export folder or .safetensors file', min: 1, max: 1 },
  async run(ctx) {
    const job = optString(ctx, 'job');
    if (!job) throw new UsageError('--job JOB is required');
    const shapes = expectShapes(ctx);
    const step = optString(ctx, 'step');
    if (step !== undefined && !/^\d+$/.test(step))
      throw new UsageError(`--step expects an integer >= 0, got '${step}'`);
    const source = ctx.positionals[0] as string;
    if (isPeftFolder(source)) {
      const peft = readPeftPromptTuning(source);
      const task = optString(ctx, 'task');
      const name = optString(ctx, 'tensor') ?? (task ? `prompt.${task}` : 'prompt');
      if (typeof shapes === 'number' && peft.prompt.shape[1] !== shapes)
        throw new ShapeMismatchError(
          name,
          peft.prompt.shape,
          `[..., ${shapes}] (last dimension d_model = ${shapes})`,
          source,
        );
      const m = await withBank(
        ctx,
        async (b) =>
          b.commit({
            job,
            parent: (await b.head(job))?.id ?? null,
            step: step !== undefined ? Number(step) : 0,
            method: optString(ctx, 'method') ?? 'prompt-tuning',
            configHash: configHash(null),
            tensors: new Map([[name, peft.prompt]]),
            metrics: {},
            ...(tags(ctx) ? { tags: tags(ctx) as string[] } : {}),
            extra: {
              importedFrom: {
                path: path.resolve(source),
                format: 'peft',
                baseModel: peft.config.base_model_name_or_path ?? null,
                numVirtualTokens: peft.prompt.shape[0],
                droppedDecoderRows: peft.droppedRows,
              },
            },
          }),
        true,
      );
      if (optBool(ctx, 'json')) json(ctx, m);
      else
        out(
          ctx,
          `imported the PEFT prompt (${peft.prompt.shape.join(' x ')}) as ${name} in ${m.id} (job ${m.job})` +
            (peft.droppedRows > 0 ? `; its ${peft.droppedRows} decoder prompt rows were left out` : ''),
        );
      return 0;
    }
    const m = await withBank(
      ctx,
      (b) =>
        b.import(source, {
          job,
          ...(shapes === undefined ? {} : { expectShapes: shapes }),
          ...(optString(ctx, 'method') ? { method: optString(ctx, 'method') as string } : {}),
          ...(step !== undefined ? { step: Number(step) } : {}),
          ...(tags(ctx) ? { tags: tags(ctx) as string[] } : {}),
        }),
      true,
    );
    if (optBool(ctx, 'json')) json(ctx, m);
    else
      out(
        ctx,
        `imported as ${m.id} (job ${m.job}, step ${m.step}, ${Object.keys(m.tensors).length} tensors)`,
      );
    return 0;
  },
};

const gc: CliCommand = {
  path: ['bank', 'gc'],
  summary: 'Delete tensor blobs that no version references',
  usage: '(--bank DIR | --nats URL) [--grace SECONDS] [--dry-run] [--force] [--json]',
  description: `${STORE_HELP}

Blobs younger than the grace period are kept, because a commit in flight writes its blobs before its
manifest. gc refuses to run while any manifest is unreadable (it cannot tell which blobs that version needs)
unless --force.`,
  examples: [
    'promptmesh bank gc --bank runs/bank --dry-run',
    'promptmesh bank gc --bank runs/bank --grace 0 --json',
  ],
  options: [
    ...STORE_OPTIONS,
    {
      name: 'grace',
      type: 'string',
      value: 'SECONDS',
      description: 'keep unreferenced blobs younger than this',
      default: '900',
    },
    { name: 'dry-run', type: 'boolean', description: 'report what would be deleted, delete nothing' },
    { name: 'force', type: 'boolean', description: 'run even with unreadable manifests' },
    JSON_OPTION,
  ],
  async run(ctx) {
    const grace = Number(optString(ctx, 'grace') ?? '900');
    if (!Number.isFinite(grace) || grace < 0) throw new UsageError('--grace expects seconds >= 0');
    const r = await withBank(ctx, (b) =>
      b.gc({ graceMs: grace * 1000, dryRun: optBool(ctx, 'dry-run'), force: optBool(ctx, 'force') }),
    );
    if (optBool(ctx, 'json')) json(ctx, r);
    else
      out(
        ctx,
        `${r.dryRun ? 'would delete' : 'deleted'} ${r.blobsDeleted} blob(s), ${fmtBytes(r.bytesDeleted)}; ` +
          `kept ${r.blobsKept} (${fmtBytes(r.bytesKept)}, ${r.blobsSkippedRecent} within the grace period); ${r.versions} version(s)`,
      );
    return 0;
  },
};

const compose: CliCommand = {
  path: ['bank', 'compose'],
  summary: 'Build a new version from prompts of earlier versions (e.g. an ATTEMPT source set)',
  usage:
    '(--bank DIR | --nats URL) --job JOB [--base VERSION] [--drop NAME]... [--take VERSION:TENSOR[=AS]]... [--json]',
  description: `${STORE_HELP}

Starts from every tensor of --base (if given), removes each --drop, then adds each --take (a tensor of any
version, renamed with =AS). The result is committed on top of JOB's head; its manifest records where each
tensor came from. Use it to add a source prompt to an ATTEMPT source set, or to remove one.`,
  examples: [
    'promptmesh bank compose --bank runs/bank --job attempt-v2 --base attempt@head --take sst2@head:prompt.sst2=source.sst2',
    'promptmesh bank compose --bank runs/bank --job attempt-v3 --base attempt-v2@head --drop source.qnli',
  ],
  options: [
    ...STORE_OPTIONS,
    { name: 'job', type: 'string', value: 'JOB', description: 'job to commit the new version to' },
    { name: 'base', type: 'string', value: 'VERSION', description: 'start from all tensors of this version' },
    {
      name: 'take',
      type: 'string',
      value: 'VERSION:TENSOR[=AS]',
      description: 'add a tensor (repeatable)',
      multiple: true,
    },
    {
      name: 'drop',
      type: 'string',
      value: 'NAME',
      description: 'leave out a tensor of the base (repeatable)',
      multiple: true,
    },
    ...SHAPE_OPTIONS,
    {
      name: 'method',
      type: 'string',
      value: 'NAME',
      description: "method recorded (default: the base's, or 'compose')",
    },
    {
      name: 'tag',
      type: 'string',
      value: 'TAG',
      description: 'tag the new version (repeatable)',
      multiple: true,
    },
    JSON_OPTION,
  ],
  async run(ctx) {
    const job = optString(ctx, 'job');
    if (!job) throw new UsageError('--job JOB is required');
    const base = optString(ctx, 'base');
    const take = listOf(ctx, 'take').map(parseTake);
    const drop = listOf(ctx, 'drop');
    if (!base && take.length === 0) throw new UsageError('give --base VERSION and/or at least one --take');
    const shapes = expectShapes(ctx);
    const m = await withBank(
      ctx,
      (b) =>
        b.compose({
          job,
          take,
          drop,
          ...(base ? { base } : {}),
          ...(shapes === undefined ? {} : { expectShapes: shapes }),
          ...(optString(ctx, 'method') ? { method: optString(ctx, 'method') as string } : {}),
          ...(tags(ctx) ? { tags: tags(ctx) as string[] } : {}),
        }),
      true,
    );
    if (optBool(ctx, 'json')) json(ctx, m);
    else out(ctx, `composed ${m.id} (job ${m.job}): ${Object.keys(m.tensors).sort().join(', ')}`);
    return 0;
  },
};

/** Every `promptmesh bank` subcommand. */
export const commands: CliCommand[] = [ls, show, diff, tag, exportCmd, importCmd, gc, compose];
