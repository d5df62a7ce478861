import { readJobConfig } from '../../config/job-config.js';
import { methodFactory, methodNames, type ParameterReport, parameterReport } from '../../methods/index.js';
import { readT5Config } from '../../model/checkpoint/index.js';
import type { T5Config } from '../../model/t5-config.js';
import { type CliCommand, type CliContext, optBool, optInt, optString, UsageError } from '../command.js';

/** Parameters of a T5 from its config alone (no weights): embeddings, blocks, norms, relative biases, lm_head. */
export function backboneParameterCount(c: T5Config): number {
  const d = c.dModel;
  const inner = c.numHeads * c.dKv;
  const attn = 4 * d * inner;
  const ff = (c.feedForwardProj === 'gated-gelu' ? 3 : 2) * d * c.dFf;
  const enc = c.numLayers * (attn + ff + 2 * d);
  const dec = c.numDecoderLayers * (2 * attn + ff + 3 * d);
  const bias = 2 * c.relativeAttentionNumBuckets * c.numHeads;
  return c.vocabSize * d + enc + dec + bias + 2 * d + (c.tieWordEmbeddings ? 0 : c.vocabSize * d);
}

function render(r: ParameterReport, tasks: number): string {
  const lines = [`method ${r.method}`];
  for (const t of r.tensors) {
    lines.push(
      `  ${t.name.padEnd(28)} [${t.shape.join(', ')}]`.padEnd(52) +
        `${t.count.toLocaleString('en-US').padStart(12)}  ${t.trainable ? t.group : 'frozen'}${t.task ? ` (task ${t.task})` : ''}`,
    );
  }
  lines.push(
    `  trainable per task: ${Math.round(r.perTask).toLocaleString('en-US')}${tasks > 1 ? ` (over ${tasks} tasks)` : ''}`,
  );
  lines.push(`  trainable total:    ${r.total.toLocaleString('en-US')}`);
  if (r.frozen) lines.push(`  frozen (carried):   ${r.frozen.toLocaleString('en-US')}`);
  if (r.percentOfBackbone !== undefined)
    lines.push(`  share of backbone:  ${r.percentOfBackbone.toFixed(4)}%`);
  return lines.join('\n');
}

/** --frozen-layernorm / --trainable-layernorm; neither leaves the method's default. */
function layerNormFlag(ctx: CliContext): { trainableLayerNorm?: boolean } {
  const frozen = optBool(ctx, 'frozen-layernorm');
  const trainable = optBool(ctx, 'trainable-layernorm');
  if (frozen && trainable) throw new UsageError('give --frozen-layernorm or --trainable-layernorm, not both');
  return frozen ? { trainableLayerNorm: false } : trainable ? { trainableLayerNorm: true } : {};
}

export const command: CliCommand = {
  path: ['describe'],
  summary: "Print a method's trainable tensors and parameter counts without loading weights",
  usage: '(--config JOB.json | --method NAME [--d-model N] [--tasks N] [...]) [--json]',
  description: `
Counts come from each method's own description of its tensors, so they are exactly what training creates.
"Per task" follows the papers: a task's own tensors plus an equal share of the shared ones (ATTEMPT-m).
With --config, every stage of the job is described, using the backbone's config.json for the dimensions
(--checkpoint DIR reads another folder's, e.g. a local copy of the backbone a pod's config names).
With --method, the dimensions come from flags; --checkpoint DIR (or --backbone-params N) adds the share of
the backbone. Defaults are the methods' own, as in a job config: the ATTEMPT LayerNorm counts as trainable
(the paper's 232K); --frozen-layernorm gives the released code's count, which never trains it.`,
  examples: [
    'promptmesh describe --method attempt --d-model 768 --tasks 8 --json',
    'promptmesh describe --method attempt --d-model 768 --frozen-layernorm',
    'promptmesh describe --method tpt --d-model 768 --tune-bank',
    'promptmesh describe --config job.json',
    'promptmesh describe --config k8s/job.json --checkpoint ./t5-base   # a pod config, a local backbone',
  ],
  options: [
    { name: 'config', type: 'string', value: 'FILE', description: 'job config to describe (all stages)' },
    {
      name: 'method',
      type: 'string',
      value: 'NAME',
      description: `method (${'prompt-tuning, attempt, tpt, spt'})`,
    },
    { name: 'd-model', type: 'string', value: 'N', description: 'model width', default: '768' },
    { name: 'vocab-size', type: 'string', value: 'N', description: 'vocabulary size', default: '32128' },
    {
      name: 'tasks',
      type: 'string',
      value: 'N',
      description: 'number of tasks trained together',
      default: '1',
    },
    { name: 'prompt-length', type: 'string', value: 'N', description: 'prompt length (method default: 100)' },
    {
      name: 'sources',
      type: 'string',
      value: 'N',
      description: 'ATTEMPT: number of source prompts',
      default: '6',
    },
    {
      name: 'frozen-layernorm',
      type: 'boolean',
      description: "ATTEMPT: the attention LayerNorm's 2d frozen (released code)",
    },
    {
      name: 'trainable-layernorm',
      type: 'boolean',
      description: 'ATTEMPT: the LayerNorm trained (the default, as the paper)',
    },
    { name: 'tune-bank', type: 'boolean', description: 'TPT: the bank is fine-tuned per task (stage 2)' },
    {
      name: 'checkpoint',
      type: 'string',
      value: 'DIR',
      description:
        "read dimensions from this folder's config.json (with --config: instead of the job's backbone)",
    },
    { name: 'backbone-params', type: 'string', value: 'N', description: 'backbone size, for the percentage' },
    { name: 'json', type: 'boolean', description: 'print JSON' },
  ],
  async run(ctx) {
    const json = optBool(ctx, 'json');
    const reports: (ParameterReport & { stage?: string })[] = [];
    const configFile = optString(ctx, 'config');
    if (configFile) {
      const job = readJobConfig(configFile);
      // A pod's config names a path inside the pod (/models/t5-base): --checkpoint points at a local copy.
      const dir = optString(ctx, 'checkpoint') ?? job.backbone.checkpoint;
      let backbone: ReturnType<typeof readT5Config>;
      try {
        backbone = readT5Config(dir);
      } catch (e) {
        throw new UsageError(
          `${(e as Error).message}${optString(ctx, 'checkpoint') ? '' : ` (the backbone of ${configFile}; pass --checkpoint DIR to read the dimensions from another folder)`}`,
        );
      }
      const total = backboneParameterCount(backbone);
      for (const stage of job.stages) {
        const { name, ...options } = stage.method;
        const f = methodFactory(name);
        const dims = { dModel: backbone.dModel, vocabSize: backbone.vocabSize, tasks: stage.tasks };
        reports.push({
          stage: stage.name,
          ...parameterReport(name, f.describe(f.parseConfig(options), dims), dims, total),
        });
      }
    } else {
      const name = optString(ctx, 'method');
      if (!name)
        throw new UsageError(`give --config FILE or --method NAME (one of ${methodNames().join(', ')})`);
      const f = methodFactory(name);
      const ckpt = optString(ctx, 'checkpoint');
      const cfg = ckpt ? readT5Config(ckpt) : undefined;
      const nTasks = optInt(ctx, 'tasks', 1)!;
      if (nTasks < 1) throw new UsageError('--tasks must be at least 1');
      const tasks = Array.from({ length: nTasks }, (_, i) => `task${i}`);
      const promptLength = optInt(ctx, 'prompt-length');
      const raw =
        f.quickConfig?.({
          tasks,
          ...layerNormFlag(ctx),
          tuneBank: optBool(ctx, 'tune-bank'),
          sources: optInt(ctx, 'sources', 6)!,
          ...(promptLength !== undefined ? { promptLength } : {}),
        }) ?? {};
      const dims = {
        dModel: cfg?.dModel ?? optInt(ctx, 'd-model', 768)!,
        vocabSize: cfg?.vocabSize ?? optInt(ctx, 'vocab-size', 32128)!,
        tasks,
      };
      const backbone = cfg ? backboneParameterCount(cfg) : optInt(ctx, 'backbone-params');
      reports.push(parameterReport(name, f.describe(f.parseConfig(raw), dims), dims, backbone));
    }
    if (json) {
      ctx.stdout.write(`${JSON.stringify(reports.length === 1 ? reports[0] : reports, null, 2)}\n`);
    } else {
      for (const r of reports) {
        if (r.stage) ctx.stdout.write(`stage ${r.stage}: `);
        const n = r.tensors.length ? new Set(r.tensors.map((t) => t.task).filter(Boolean)).size : 1;
        ctx.stdout.write(`${render(r, Math.max(1, n))}\n`);
      }
    }
    return 0;
  },
};
