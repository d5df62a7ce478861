/**
 * `promptmesh bank history` (a job's every step and evaluation, from the versions' `history.jsonl` attachments)
 * and `promptmesh plot` (the same records drawn as an SVG of loss and evaluation curves per task).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BankInputError } from '../../bank/index.js';
import { plotHistorySvg } from '../../telemetry/plot-svg.js';
import { type HistoryRecord, historyToCsv, parseHistory, readBankHistory } from '../../train/history.js';
import { type CliCommand, type CliContext, optString, UsageError } from '../command.js';
import { STORE_HELP, STORE_OPTIONS, withBank } from './bank.js';

const KINDS = ['all', 'step', 'eval'] as const;

function filterRecords(ctx: CliContext, records: HistoryRecord[]): HistoryRecord[] {
  const kind = optString(ctx, 'kind') ?? 'all';
  if (!(KINDS as readonly string[]).includes(kind))
    throw new UsageError(`--kind: '${kind}' is not one of ${KINDS.join(', ')}`);
  const stage = optString(ctx, 'stage');
  return records.filter((r) => (kind === 'all' || r.kind === kind) && (!stage || r.stage === stage));
}

function renderText(records: HistoryRecord[]): string {
  if (records.length === 0) return '(no history: the version and its parents carry no history.jsonl)';
  const lines: string[] = [];
  for (const r of records) {
    const head = `${r.stage.padEnd(10)} ${String(r.step).padStart(6)}`;
    if (r.kind === 'step') {
      const tasks = Object.entries(r.tasks)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([t, l]) => `${t} ${l === null ? 'nan' : l.toFixed(4)}`)
        .join(' ');
      const lr = Object.entries(r.lr)
        .map(([g, v]) => `${g} ${v.toExponential(2)}`)
        .join(' ');
      lines.push(
        `${head}  loss ${r.loss === null ? 'nan' : r.loss.toFixed(4)} | ${tasks} | lr ${lr} | grad ${r.gradNorm === null ? 'nan' : r.gradNorm.toFixed(3)} | ${r.examplesPerSecond.toFixed(1)} ex/s`,
      );
    } else {
      const scores = Object.entries(r.scores)
        .map(([t, s]) => `${t} ${s === null ? '-' : s.toFixed(1)}`)
        .join(', ');
      lines.push(
        `${head}  eval (${r.split}) average ${r.average === null ? '-' : r.average.toFixed(2)} | ${scores}`,
      );
    }
  }
  return lines.join('\n');
}

const FILTER_OPTIONS = [
  { name: 'kind', type: 'string', value: 'all|step|eval', description: 'which records', default: 'all' },
  { name: 'stage', type: 'string', value: 'NAME', description: 'only this stage' },
] as const;

export const historyCommand: CliCommand = {
  path: ['bank', 'history'],
  summary:
    "A job's run history: every step's loss per task, learning rates, gradient norm, examples/s, and every evaluation",
  usage:
    '(--bank DIR | --nats URL) JOB|VERSION [--format text|csv|json|jsonl] [--kind all|step|eval] [--stage NAME]',
  description: `${STORE_HELP} A bare JOB means JOB@head.

Each version a training job commits carries the steps and evaluations since its parent (its history.jsonl
attachment); this walks the version's parents back to the job's first version and prints them in order. CSV has
one column per task loss, learning-rate group and task score.`,
  examples: [
    'promptmesh bank history --bank runs/bank demo',
    'promptmesh bank history --bank runs/bank demo@head --kind eval',
    'promptmesh bank history --bank runs/bank demo --format csv > demo-history.csv',
  ],
  options: [
    ...STORE_OPTIONS,
    {
      name: 'format',
      type: 'string',
      value: 'text|csv|json|jsonl',
      description: 'output format',
      default: 'text',
    },
    ...FILTER_OPTIONS.map((o) => ({ ...o })),
  ],
  positionals: { name: 'JOB|VERSION', description: 'a job (its head) or a version', min: 1, max: 1 },
  async run(ctx) {
    const format = optString(ctx, 'format') ?? 'text';
    if (!['text', 'csv', 'json', 'jsonl'].includes(format))
      throw new UsageError(`--format: '${format}' is not one of text, csv, json, jsonl`);
    const { records } = await withBank(ctx, (bank) => readBankHistory(bank, ctx.positionals[0]!));
    const shown = filterRecords(ctx, records);
    const text =
      format === 'csv'
        ? historyToCsv(shown)
        : format === 'json'
          ? `${JSON.stringify(shown, null, 2)}\n`
          : format === 'jsonl'
            ? shown.map((r) => `${JSON.stringify(r)}\n`).join('')
            : `${renderText(shown)}\n`;
    ctx.stdout.write(text);
    return 0;
  },
};

export const plotCommand: CliCommand = {
  path: ['plot'],
  summary: "Draw a job's training loss and evaluation curves per task as an SVG file",
  usage: '(--bank DIR | --nats URL) JOB|VERSION --out FILE.svg | --history FILE.jsonl --out FILE.svg',
  description: `Reads the run history of a bank version and its parents (see \`promptmesh bank history\`), or a
history.jsonl file that \`promptmesh train --out DIR\` wrote (DIR/<stage>/history.jsonl; give several with
repeated --history to draw a whole job), and writes one SVG: the training loss per task (smoothed, raw behind it)
and the evaluation score per task, stages one after another on the step axis. Open the file in a browser.${STORE_HELP}`,
  examples: [
    'promptmesh plot --bank runs/bank demo --out demo.svg',
    'promptmesh plot --history runs/pt/targets/history.jsonl --out pt.svg --smoothing 0',
  ],
  options: [
    ...STORE_OPTIONS,
    {
      name: 'history',
      type: 'string',
      value: 'FILE',
      description: 'read this history.jsonl instead of a bank',
      multiple: true,
    },
    { name: 'out', type: 'string', value: 'FILE.svg', description: 'where to write the SVG' },
    {
      name: 'title',
      type: 'string',
      value: 'TEXT',
      description: 'title above the plot (default: the job or file)',
    },
    {
      name: 'smoothing',
      type: 'string',
      value: 'S',
      description: 'EMA factor for the loss, 0-0.999',
      default: '0.9',
    },
    ...FILTER_OPTIONS.filter((o) => o.name === 'stage').map((o) => ({ ...o })),
  ],
  positionals: { name: 'JOB|VERSION', description: 'a job (its head) or a version', max: 1 },
  async run(ctx) {
    const outFile = optString(ctx, 'out');
    if (!outFile) throw new UsageError('--out FILE.svg is required');
    const smoothing = Number(optString(ctx, 'smoothing') ?? '0.9');
    if (!(smoothing >= 0 && smoothing < 1))
      throw new UsageError(`--smoothing expects 0 <= S < 1, got ${smoothing}`);
    const files = ([] as string[]).concat((ctx.values.history as string[] | string | undefined) ?? []);
    const ref = ctx.positionals[0];
    if (files.length > 0 && ref)
      throw new UsageError('give either a bank JOB|VERSION or --history FILE, not both');
    if (files.length === 0 && !ref)
      throw new UsageError('give a bank JOB|VERSION (with --bank or --nats) or --history FILE');
    let records: HistoryRecord[];
    let title = optString(ctx, 'title');
    if (files.length > 0) {
      records = files.flatMap((f) => {
        let text: string;
        try {
          text = fs.readFileSync(f, 'utf8');
        } catch (e) {
          throw new BankInputError(`cannot read history file ${f}: ${(e as Error).message}`);
        }
        return parseHistory(text, f);
      });
      title ??= files.map((f) => path.basename(path.dirname(f))).join(' + ');
    } else {
      const r = await withBank(ctx, (bank) => readBankHistory(bank, ref!));
      records = r.records;
      title ??= `${ref} (${r.head.slice(0, 12)}, ${r.versions} version${r.versions === 1 ? '' : 's'})`;
    }
    const stage = optString(ctx, 'stage');
    if (stage) records = records.filter((r) => r.stage === stage);
    if (records.length === 0) {
      ctx.stderr.write(
        'promptmesh plot: no history records to draw (was the job trained by a version that records history?)\n',
      );
      return 1;
    }
    fs.mkdirSync(path.dirname(path.resolve(outFile)), { recursive: true });
    fs.writeFileSync(outFile, plotHistorySvg(records, { title, smoothing }));
    const steps = records.filter((r) => r.kind === 'step').length;
    ctx.stderr.write(`wrote ${outFile}: ${steps} steps, ${records.length - steps} evaluations\n`);
    return 0;
  },
};
