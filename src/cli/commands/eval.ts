import {
  EVAL_SPLITS,
  type EvalSplit,
  evaluateVersion,
  openServedVersion,
  reportMetrics,
} from '../../infer/index.js';
import { ExampleEncoder } from '../../train/batching.js';
import { formatEvalScores } from '../../train/trainer.js';
import { type CliCommand, optBool, optInt, optString, UsageError } from '../command.js';
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
  path: ['eval'],
  summary: "Evaluate a bank version on its tasks' validation or test split, with each task's metrics",
  usage: '(--bank DIR | --nats URL) VERSION [--config JOB.json] [--split S] [--task T]... [--json]',
  description: `${VERSION_HELP}

Scores the version on the tasks its stage evaluates (held-out ones included), with the stage's evaluation settings
(examples per task, batch size, generate or rank) and the trainer's evaluation code: on the validation split the
numbers are the ones the stage recorded in the version's metrics ('bank show VERSION'). --split test scores the
labelled test split instead; --task, --max-examples and --mode change what is scored.`,
  examples: [
    'promptmesh eval --bank promptmesh-bank demo.targets            # the demo job’s final ATTEMPT version',
    'promptmesh eval --bank promptmesh-bank demo@head --split test --max-examples 0 --json',
    'promptmesh eval --bank runs/bank 3f2a9c --config jobs/glue.json --task rte --task mrpc',
  ],
  options: [
    ...VERSION_OPTIONS,
    { name: 'split', type: 'string', value: 'S', description: 'validation | test', default: 'validation' },
    {
      name: 'task',
      type: 'string',
      value: 'T',
      description: "evaluate only this task (repeatable; default: the stage's evaluation tasks)",
      multiple: true,
    },
    {
      name: 'max-examples',
      type: 'string',
      value: 'N',
      description: "examples per task, 0 = all (default: the stage's evalExamples)",
    },
    { name: 'batch-size', type: 'string', value: 'N', description: "default: the stage's evalBatchSize" },
    { name: 'json', type: 'boolean', description: 'print the report as JSON' },
  ],
  positionals: { name: 'VERSION', description: 'id, id prefix, tag or JOB@head', min: 1, max: 1 },
  async run(ctx) {
    const split = (optString(ctx, 'split') ?? 'validation') as EvalSplit;
    if (!EVAL_SPLITS.includes(split))
      throw new UsageError(`--split expects one of ${EVAL_SPLITS.join(', ')}, got '${split}'`);
    const maxExamples = optInt(ctx, 'max-examples');
    if (maxExamples !== undefined && maxExamples < 0) throw new UsageError('--max-examples expects N >= 0');
    const mode = readMode(ctx);
    const batchSize = readBatchSize(ctx);
    const taskFlags = ctx.values.task;
    const tasks =
      taskFlags === undefined ? undefined : (Array.isArray(taskFlags) ? taskFlags : [taskFlags]).map(String);
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
        });
        try {
          const encoder = new ExampleEncoder(tokenizer, {
            maxSourceLength: job.maxSourceLength,
            maxTargetLength: job.maxTargetLength,
          });
          const t0 = performance.now();
          const r = evaluateVersion(job, v.stage, model, v.method, encoder, v.manifest.step, {
            split,
            ...(tasks ? { tasks } : {}),
            ...(maxExamples !== undefined ? { maxExamples } : {}),
            ...(mode ? { mode } : {}),
            ...(batchSize ? { batchSize } : {}),
          });
          const seconds = (performance.now() - t0) / 1000;
          if (optBool(ctx, 'json')) {
            ctx.stdout.write(
              `${JSON.stringify(
                {
                  version: v.manifest.id,
                  job: v.manifest.job,
                  stage: v.stage.name,
                  method: v.manifest.method,
                  split,
                  ...r,
                  versionMetrics: reportMetrics(r),
                  recorded: v.manifest.metrics,
                  seconds,
                },
                null,
                2,
              )}\n`,
            );
          } else {
            const held = r.heldOut ? `, held-out average ${r.heldOut.average.toFixed(2)}` : '';
            ctx.stdout.write(
              `${v.manifest.id.slice(0, 12)} (${v.manifest.job}, stage ${v.stage.name}, ${v.manifest.method}, step ${v.manifest.step}) on ${split}: ` +
                `average ${r.average.toFixed(2)}${held} | ${formatEvalScores(r)}\n`,
            );
            for (const [t, m] of Object.entries(r.metrics)) {
              const parts = Object.entries(m).map(([k, x]) => `${k} ${x.toFixed(2)}`);
              ctx.stdout.write(`  ${t}: ${parts.join(', ')} (${r.evaluated[t]} examples)\n`);
            }
          }
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
