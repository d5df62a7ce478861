import { selectBackend } from '../../backend/index.js';
import { demoJob } from '../../config/demo-job.js';
import { checkStepsOverride, type JobConfig, readJobConfig } from '../../config/job-config.js';
import { stageScoreSummary } from '../../train/history.js';
import { formatDuration, TerminalProgress } from '../../train/progress.js';
import { runJob } from '../../train/run-job.js';
import { checkJobTasks } from '../../train/task-source.js';
import { formatEvalScores } from '../../train/trainer.js';
import { type CliCommand, optBool, optInt, optString } from '../command.js';

export const command: CliCommand = {
  path: ['train'],
  summary: 'Train a job in this process (the single-process trainer); the demo job without --config',
  usage: '[--config JOB.json] [--out DIR] [--steps N] [--backend NAME] [--json]',
  description: `
Runs every stage of the job in order: each trains its method on a mixture of its tasks, evaluates on the
validation split, keeps the parameters with the best validation average and, with --out, saves them as
OUT/<stage>/ as 'bank export' writes a version (tensors.safetensors + manifest.json, which 'bank import'
commits as is), with job.json and history.jsonl (every step's loss, learning rate and
gradient norm, every evaluation: draw it with 'promptmesh plot --history OUT/<stage>/history.jsonl --out
curves.svg'). Later stages receive earlier stages' tensors by name (trained
source prompts for ATTEMPT, a token bank for TPT stage 2). See docs/configuration.md for the job format.
For several workers, use 'promptmesh up' (one machine) or 'promptmesh coordinator' + 'promptmesh worker'.`,
  examples: [
    'promptmesh train                                  # the built-in demo job',
    'promptmesh train --config examples/attempt-glue.json --out runs/attempt',
    'PROMPTMESH_BACKEND=cpu promptmesh train --steps 20',
  ],
  options: [
    {
      name: 'config',
      type: 'string',
      value: 'FILE',
      description: 'job config (default: the built-in demo job)',
    },
    { name: 'out', type: 'string', value: 'DIR', description: 'save each stage under DIR/<stage>/' },
    { name: 'steps', type: 'string', value: 'N', description: 'override every stage’s step count' },
    { name: 'backend', type: 'string', value: 'NAME', description: 'node-gpu | node | wasm | cpu | auto' },
    { name: 'json', type: 'boolean', description: 'print the stage results as JSON on stdout' },
  ],
  async run(ctx) {
    // The config (ranges, task folders) is checked before the backend loads or anything is allocated.
    const file = optString(ctx, 'config');
    const steps = optInt(ctx, 'steps');
    if (steps !== undefined) checkStepsOverride(steps);
    let job: JobConfig = file ? readJobConfig(file) : demoJob(steps !== undefined ? { steps } : {});
    if (file) checkJobTasks(job, file);
    if (steps !== undefined && file)
      job = { ...job, stages: job.stages.map((s) => ({ ...s, train: { ...s.train, steps } })) };
    await selectBackend({ requested: optString(ctx, 'backend'), log: (l) => ctx.stderr.write(`${l}\n`) });
    const progress = new TerminalProgress(ctx.stderr as NodeJS.WriteStream);
    const out = optString(ctx, 'out');
    const results = await runJob(job, { progress, ...(out ? { out } : {}) });
    if (optBool(ctx, 'json')) {
      ctx.stdout.write(
        `${JSON.stringify(
          results.map(({ tensors, ...r }) => ({ ...r, tensors: [...tensors.keys()] })),
          null,
          2,
        )}\n`,
      );
    } else {
      for (const r of results) {
        const scores = r.best ? formatEvalScores(r.best) : '';
        ctx.stdout.write(
          `${r.stage} (${r.method}): best validation average ${r.best ? r.best.average.toFixed(2) : '-'} at step ${r.best?.step ?? '-'} in ${formatDuration(r.ms / 1000)}${scores ? ` | ${scores}` : ''}\n`,
        );
      }
      // Untrained -> trained per task, for the stages with `evalAtStart`, from every evaluation the stages ran: the
      // line names the best (the parameters kept), as `up` prints it from the bank's history.
      if (out) ctx.stdout.write(`saved under ${out}/\n`);
      const records = results.flatMap((r) => r.history);
      for (const line of stageScoreSummary(records, job.stages)) ctx.stdout.write(`${line}\n`);
    }
    return 0;
  },
};
