import * as fs from 'node:fs';
import {
  openServedVersion,
  type ParsedRow,
  PredictRowError,
  parsePredictJsonl,
  UnservedTaskError,
} from '../../infer/index.js';
import { type CliCommand, optString, UsageError } from '../command.js';
import {
  loadBackbone,
  openVersionBank,
  readBatchSize,
  readMode,
  readVersionJob,
  VERSION_HELP,
  VERSION_OPTIONS,
} from '../version-options.js';

export const command: CliCommand = {
  path: ['predict'],
  summary: 'Run a bank version on a JSONL file of {"task", "input"} rows (tasks mixed freely); JSONL out',
  usage: '(--bank DIR | --nats URL) VERSION --input FILE.jsonl [--out FILE.jsonl] [--config JOB.json]',
  description: `${VERSION_HELP}

Each input line is a JSON object: {"task": T, "input": "source text"} (the text as the task formats it, prefix
included, e.g. "sentiment review: the soup was great"), or {"task": T, "input": {...}} / {"task": T, ...} with
the task's own fields (its JSONL layout, label optional), which the task formats as in training. An "id" field is
echoed back. Rows of different tasks go into the same batches: each row gets its own task's prompt (ATTEMPT: its own
mixture of source prompts; TPT/SPT: rows retrieved for its own input). Output: one line per input row, in input
order, {"task", "output"} (plus "id", and "target" when the row gave a label). Progress goes to stderr. A malformed
line or a task the version does not serve stops the run before any work, naming FILE:LINE.`,
  examples: [
    'echo \'{"task":"demo-dining","input":"dining review: the soup was cold ."}\' > rows.jsonl',
    'promptmesh predict --bank promptmesh-bank demo.targets --input rows.jsonl',
    'promptmesh predict --bank promptmesh-bank demo@head --input rows.jsonl --out predictions.jsonl --batch-size 64',
  ],
  options: [
    ...VERSION_OPTIONS,
    { name: 'input', type: 'string', value: 'FILE', description: "JSONL rows ('-' reads stdin)" },
    { name: 'out', type: 'string', value: 'FILE', description: 'write JSONL here (default: stdout)' },
    {
      name: 'batch-size',
      type: 'string',
      value: 'N',
      description: "rows per forward pass (default: the stage's evalBatchSize)",
    },
  ],
  positionals: { name: 'VERSION', description: 'id, id prefix, tag or JOB@head', min: 1, max: 1 },
  async run(ctx) {
    const input = optString(ctx, 'input');
    if (!input) throw new UsageError('--input FILE is required');
    const mode = readMode(ctx);
    const batchSize = readBatchSize(ctx);
    const name = input === '-' ? '<stdin>' : input;
    let text: string;
    try {
      text = fs.readFileSync(input === '-' ? 0 : input, 'utf8');
    } catch (e) {
      throw new UsageError(`--input ${input}: ${(e as Error).message}`);
    }
    const rows = parsePredictJsonl(text, name);
    const opened = await openVersionBank(ctx);
    const { job, source } = await readVersionJob(ctx, opened.bank, ctx.positionals[0] as string).catch(
      async (e) => {
        await opened.close();
        throw e;
      },
    );
    try {
      const { model, tokenizer } = await loadBackbone(ctx, job);
      try {
        const v = await openServedVersion(opened.bank, ctx.positionals[0] as string, job, model, tokenizer, {
          source,
          ...(optString(ctx, 'stage') ? { stageName: optString(ctx, 'stage') as string } : {}),
          ...(mode ? { mode } : {}),
          ...(batchSize ? { batchSize } : {}),
        });
        try {
          const checked: ParsedRow[] = rows.map((r) => {
            try {
              return { ...r, task: v.engine.checkTask(r.task) };
            } catch (e) {
              if (e instanceof UnservedTaskError) throw new PredictRowError(r.where, e.message);
              throw e;
            }
          });
          const tasks = [...new Set(checked.map((r) => r.task))];
          ctx.stderr.write(
            `predict: ${checked.length} rows of ${tasks.length} task(s) (${tasks.join(', ')}) with ${v.manifest.id.slice(0, 12)} (${v.manifest.method}, stage ${v.stage.name}), ${v.engine.options.batchSize} per batch, ${v.engine.options.mode}\n`,
          );
          const t0 = performance.now();
          let last = 0;
          const outputs = v.engine.predict(checked, (done) => {
            const now = performance.now();
            if (now - last < 1000 && done < checked.length) return;
            last = now;
            const rate = done / Math.max(1e-9, (now - t0) / 1000);
            ctx.stderr.write(`predict: ${done}/${checked.length} rows, ${rate.toFixed(1)} ex/s\n`);
          });
          const lines = checked.map((r, i) =>
            JSON.stringify({
              ...(r.id !== undefined ? { id: r.id } : {}),
              task: r.task,
              output: outputs[i],
              ...(r.target !== undefined ? { target: r.target } : {}),
            }),
          );
          const body = lines.length > 0 ? `${lines.join('\n')}\n` : '';
          const out = optString(ctx, 'out');
          if (out) fs.writeFileSync(out, body);
          else ctx.stdout.write(body);
        } finally {
          v.dispose();
        }
      } finally {
        model.dispose();
      }
    } finally {
      await opened.close();
    }
    return 0;
  },
};
