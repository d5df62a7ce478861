import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../backend/index.js';
import { openBankStore, PromptBank } from '../../bank/index.js';
import {
  type MethodFactory,
  methodFactory,
  methodNames,
  type PromptBatch,
  type PromptMethod,
} from '../../methods/index.js';
import { readSafetensors } from '../../model/checkpoint/index.js';
import { loadT5Model } from '../../model/load-t5.js';
import type { T5Model } from '../../model/t5/index.js';
import type { TensorMap } from '../../model/tensor-map.js';
import { loadTrainedState } from '../../train/trained-state.js';
import {
  type CliCommand,
  type CliContext,
  optBool,
  optInt,
  optString,
  parseIntList,
  requireString,
  UsageError,
} from '../command.js';

/** What `method run --json` prints. */
export interface MethodRunResult {
  /** [B][P][d]: the rows the method prepends to each example's input embeddings. */
  prompts: number[][][];
  /** Mean token cross-entropy over the batch's label tokens (Hugging Face's `loss`), dropout off. */
  loss: number;
  /** ATTEMPT: [B][J] attention over the sources (config order) then the target prompt; null for other methods. */
  weights: number[][] | null;
  /** TPT: [B][k] bank rows (bank order); SPT: [B][k] memory slots (by score); null for other methods. */
  retrieved: number[][] | null;
}

function listOf(ctx: CliContext, name: string): string[] {
  const v = ctx.values[name];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

/** `--config`: a JSON object inline, or the path of a file holding one. */
function readConfigFlag(text: string): Record<string, unknown> {
  const json = text.trimStart().startsWith('{') ? text : readFileOrUsage(text, '--config');
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (err) {
    throw new UsageError(`--config: not valid JSON (${(err as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new UsageError('--config: expected a JSON object of method options, e.g. {"promptLength": 20}');
  return v as Record<string, unknown>;
}

function readFileOrUsage(file: string, flag: string): string {
  if (!fs.existsSync(file)) throw new UsageError(`${flag}: '${file}' is neither a JSON object nor a file`);
  return fs.readFileSync(file, 'utf8');
}

/**
 * The tensors and (where stored) the method options `--params` names: a bank version with `--bank`, a folder
 * written by `promptmesh train --out` or `bank export` (tensors.safetensors + manifest.json; a trained stage's
 * manifest also gives the method options and tasks), or a .safetensors file.
 */
async function readParams(
  ctx: CliContext,
  ref: string,
  method: string,
): Promise<{ tensors: TensorMap; config?: Record<string, unknown>; tasks?: string[] }> {
  const bankDir = optString(ctx, 'bank');
  if (bankDir) {
    const opened = await openBankStore({ dir: bankDir, create: false });
    try {
      const bank = new PromptBank(opened.store, {
        onWarning: (m) => ctx.stderr.write(`promptmesh method run: warning: ${m}\n`),
      });
      const m = await bank.get(ref);
      if (m.method !== method) {
        ctx.stderr.write(
          `promptmesh method run: warning: bank version ${m.id.slice(0, 12)} was trained with method '${m.method}', running it as '${method}'\n`,
        );
      }
      return { tensors: await bank.load(m.id) };
    } finally {
      await opened.close();
    }
  }
  if (!fs.existsSync(ref))
    throw new UsageError(`--params: '${ref}' does not exist (give --bank DIR to read a bank version)`);
  if (fs.statSync(ref).isDirectory()) {
    if (fs.existsSync(path.join(ref, 'manifest.json'))) {
      const state = loadTrainedState(ref);
      const { name, ...options } = (state.manifest.methodConfig ?? {}) as Record<string, unknown>;
      if (name !== undefined && name !== method) {
        throw new UsageError(`--params: '${ref}' holds a '${String(name)}' run, not '${method}'`);
      }
      // A bank export of a version the runtime wrote records no method options: the command line's apply.
      return state.manifest.methodConfig
        ? { tensors: state.tensors, config: options, tasks: state.manifest.tasks }
        : { tensors: state.tensors };
    }
    const exported = path.join(ref, 'tensors.safetensors');
    if (!fs.existsSync(exported))
      throw new UsageError(`--params: folder '${ref}' has no tensors.safetensors (nor a manifest.json)`);
    ref = exported;
  }
  const tensors: TensorMap = new Map();
  for (const [name, t] of readSafetensors(ref, { float32: true }).tensors) {
    if (!(t.data instanceof Float32Array)) continue; // integer tensors are never method parameters
    tensors.set(name, { shape: t.shape, data: t.data });
  }
  return { tensors };
}

/** [B, L] ids and mask, padded on the right with `pad`. */
function padded(rows: number[][], pad: number): { ids: tf.Tensor2D; mask: tf.Tensor2D } {
  const B = rows.length;
  const L = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(B * L).fill(pad);
  const mask = new Float32Array(B * L);
  rows.forEach((r, b) => {
    ids.set(r, b * L);
    mask.fill(1, b * L, b * L + r.length);
  });
  return { ids: tf.tensor2d(ids, [B, L], 'int32'), mask: tf.tensor2d(mask, [B, L]) };
}

/** Runs the method's forward pass on one batch: prompts, loss and its per-example decisions. */
export function runMethod(model: T5Model, method: PromptMethod, batch: PromptBatch): MethodRunResult {
  const L = batch.inputIds.shape[1];
  const [prompts, loss] = tf.tidy(() => {
    const enc = method.encoderInputs(model, batch);
    // A method may pad the input itself (TPT's released fixed-length padding), so ask it how many rows are prompt.
    const P = enc.promptRows ?? enc.inputsEmbeds.shape[1] - L;
    const rows = tf.slice(enc.inputsEmbeds, [0, 0, 0], [-1, P, -1]);
    return [rows, model.loss({ ...enc, labels: batch.labels, labelMask: batch.labelMask })];
  });
  const inspection = method.inspect?.(model, batch) ?? {};
  const result: MethodRunResult = {
    prompts: prompts.arraySync() as number[][][],
    loss: loss.dataSync()[0]!,
    weights: inspection.weights ?? null,
    retrieved: inspection.retrieved ?? null,
  };
  tf.dispose([prompts, loss]);
  return result;
}

export const command: CliCommand = {
  path: ['method', 'run'],
  summary: "Run a method's forward pass on token ids with given parameters (for parity checks)",
  usage:
    '--checkpoint DIR --method NAME --params FILE|DIR|VERSION [--bank DIR] [--config JSON] --task TASK ' +
    '--input-ids IDS [--input-ids IDS ...] --labels IDS [--labels IDS ...] [--json] [--backend NAME]',
  description: `
Builds the method NAME with the tensors of --params (nothing is initialised or trained), prepends its prompts to
the input embeddings of each example and runs the frozen T5 with dropout off. Prints the prompt rows of each
example ([B][P][d], after ATTEMPT's mixing or TPT's and SPT's retrieval), the mean token loss over the labels,
ATTEMPT's attention weights over the source prompts then the target prompt, and the rows TPT and SPT retrieved.
One --input-ids and one --labels per example (ids comma-separated; shorter ones are padded with the pad id and
masked). --task once for every example, or once per example.

--params is a .safetensors file, a folder written by 'promptmesh train --out' (its manifest.json also gives the
method options and tasks), a folder written by 'promptmesh bank export', or, with --bank DIR, a bank version (id,
prefix, tag or JOB@head). The tensor names each method reads are listed in docs/methods.md; extra tensors (e.g.
optimizer moments) are ignored. Method options come from --config (a JSON object, inline or in a file, the
fields of a stage's "method" block) or a train folder's manifest; the others take the method's defaults. The
method's tasks are the distinct --task values (or the train folder's tasks).`,
  examples: [
    'promptmesh method run --checkpoint assets/demo-backbone --method prompt-tuning ' +
      '--params assets/method-run/prompt-tuning.safetensors --config \'{"promptLength": 4}\' --task rte ' +
      '--input-ids 13,7,1 --input-ids 5,1 --labels 5,1 --labels 6,1 --json',
    'promptmesh method run --checkpoint ./t5-base --method tpt --bank runs/bank --params tpt-rte@head ' +
      '--config tpt.json --task rte --input-ids 13,7,42,1 --labels 5,1',
  ],
  options: [
    { name: 'checkpoint', type: 'string', value: 'DIR', description: 'Hugging Face T5 model folder' },
    { name: 'method', type: 'string', value: 'NAME', description: `one of ${methodNames().join(', ')}` },
    {
      name: 'params',
      type: 'string',
      value: 'FILE|DIR|VERSION',
      description:
        'the method tensors: .safetensors file, train/export folder, or a bank version with --bank',
    },
    { name: 'bank', type: 'string', value: 'DIR', description: 'read --params as a version of this bank' },
    {
      name: 'config',
      type: 'string',
      value: 'JSON|FILE',
      description:
        'method options as a JSON object (default: the train folder manifest, else the method defaults)',
    },
    {
      name: 'task',
      type: 'string',
      value: 'TASK',
      description: 'task of the examples: once for all, or once per example',
      multiple: true,
    },
    {
      name: 'input-ids',
      type: 'string',
      value: 'IDS',
      description: 'encoder token ids of one example, comma-separated (repeat per example)',
      multiple: true,
    },
    {
      name: 'labels',
      type: 'string',
      value: 'IDS',
      description: 'target token ids of one example, comma-separated (repeat per example)',
      multiple: true,
    },
    {
      name: 'max-source-length',
      type: 'string',
      value: 'N',
      description:
        "the job's maxSourceLength: ATTEMPT's poolPadding and TPT's maskPadding false pad to it (no input may be longer)",
    },
    {
      name: 'json',
      type: 'boolean',
      description: 'print one JSON object {prompts, loss, weights, retrieved}',
    },
    {
      name: 'backend',
      type: 'string',
      value: 'NAME',
      description: 'node-gpu | node | wasm | cpu | auto (env PROMPTMESH_BACKEND)',
    },
  ],
  async run(ctx) {
    const dir = requireString(ctx, 'checkpoint');
    const name = requireString(ctx, 'method');
    let factory: MethodFactory;
    try {
      factory = methodFactory(name);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const paramsRef = requireString(ctx, 'params');
    const inputs = listOf(ctx, 'input-ids').map((t) => parseIntList('input-ids', t));
    const labels = listOf(ctx, 'labels').map((t) => parseIntList('labels', t));
    if (inputs.length === 0) throw new UsageError('--input-ids is required (one per example)');
    if (labels.length !== inputs.length) {
      throw new UsageError(
        `give one --labels per --input-ids: ${inputs.length} examples, ${labels.length} labels`,
      );
    }
    const empty = [...inputs, ...labels].findIndex((r) => r.length === 0);
    if (empty >= 0) throw new UsageError('every --input-ids and --labels needs at least one id');
    let tasks = listOf(ctx, 'task');
    if (tasks.length === 0)
      throw new UsageError('--task is required (once for all examples, or once per example)');
    if (tasks.length === 1) tasks = inputs.map(() => tasks[0]!);
    if (tasks.length !== inputs.length) {
      throw new UsageError(
        `give --task once or once per example: ${inputs.length} examples, ${tasks.length} tasks`,
      );
    }
    const configText = optString(ctx, 'config');
    const maxSourceLength = optInt(ctx, 'max-source-length');
    if (maxSourceLength !== undefined) {
      if (maxSourceLength < 1)
        throw new UsageError(`--max-source-length must be >= 1, got ${maxSourceLength}`);
      const long = inputs.findIndex((r) => r.length > maxSourceLength);
      if (long >= 0) {
        throw new UsageError(
          `--input-ids of example ${long} has ${inputs[long]!.length} ids, more than --max-source-length ${maxSourceLength}`,
        );
      }
    }

    await selectBackend({ requested: optString(ctx, 'backend'), log: (l) => ctx.stderr.write(`${l}\n`) });
    const { model, warnings } = loadT5Model(dir);
    for (const w of warnings) ctx.stderr.write(`warning: ${w}\n`);
    let method: PromptMethod | undefined;
    const batchTensors: tf.Tensor[] = [];
    try {
      const V = model.config.vocabSize;
      for (const [flag, rows] of [
        ['input-ids', inputs],
        ['labels', labels],
      ] as const) {
        const bad = rows.flat().find((i) => i < 0 || i >= V);
        if (bad !== undefined)
          throw new UsageError(`--${flag}: id ${bad} is outside the vocabulary [0, ${V})`);
      }
      const stored = await readParams(ctx, paramsRef, name);
      const options = configText !== undefined ? readConfigFlag(configText) : (stored.config ?? {});
      const config = factory.parseConfig(options);
      const methodTasks = stored.tasks ?? [...new Set(tasks)];
      method = factory.create(config, {
        model,
        tasks: methodTasks,
        seed: 0,
        restore: stored.tensors,
        ...(maxSourceLength !== undefined ? { maxSourceLength } : {}),
      });
      const src = padded(inputs, model.config.padTokenId);
      const tgt = padded(labels, model.config.padTokenId);
      batchTensors.push(src.ids, src.mask, tgt.ids, tgt.mask);
      const result = runMethod(model, method, {
        inputIds: src.ids,
        attentionMask: src.mask,
        labels: tgt.ids,
        labelMask: tgt.mask,
        tasks,
      });
      if (optBool(ctx, 'json')) {
        ctx.stdout.write(`${JSON.stringify(result)}\n`);
      } else {
        printText(ctx, result, inputs);
      }
    } finally {
      tf.dispose(batchTensors);
      method?.dispose();
      model.dispose();
    }
    return 0;
  },
};

function printText(ctx: CliContext, r: MethodRunResult, inputs: number[][]): void {
  const P = r.prompts[0]?.length ?? 0;
  const d = r.prompts[0]?.[0]?.length ?? 0;
  ctx.stdout.write(`loss ${r.loss.toFixed(6)} (mean token cross-entropy, dropout off)\n`);
  r.prompts.forEach((rows, b) => {
    ctx.stdout.write(`example ${b} (${inputs[b]!.length} ids): prompt [${P} x ${d}]\n`);
    rows.slice(0, 3).forEach((row, i) => {
      ctx.stdout.write(
        `  row ${i}: ${row
          .slice(0, 6)
          .map((x) => x.toFixed(6))
          .join(' ')} ...\n`,
      );
    });
    if (r.weights) ctx.stdout.write(`  weights: ${r.weights[b]!.map((x) => x.toFixed(6)).join(' ')}\n`);
    if (r.retrieved) ctx.stdout.write(`  retrieved: ${r.retrieved[b]!.join(' ')}\n`);
  });
}
