/**
 * Inference throughput of the predict engine (what `promptmesh predict` and `promptmesh serve` run): examples/s
 * for the same rows run three ways, alternating within one run (best of --reps each):
 *   single:  each task's rows given to `predict` on their own, so no pass holds two tasks;
 *   mixed:   all rows, the tasks interleaved, given to `predict` at once (what `promptmesh predict` does with a
 *            mixed file: the engine groups rows by task and length before cutting passes). Goal: within 10% of
 *            single.
 *   passes:  the interleaved rows cut into passes as given (`predictBatch`), every pass holding all tasks: what
 *            `serve` runs when concurrent requests of different tasks share a pass (padding to the longest source
 *            and decoding to the longest answer of any task in the pass).
 *
 *   npm run bench -- predict [--backend node,wasm] [--method attempt,prompt-tuning] [--rows 256] [--batch 32]
 *                           [--mode generate] [--reps 3] [--json]
 *
 * The model is the shipped demo backbone; the prompts are the demo job's methods freshly initialised (prompt tuning:
 * one prompt per source task; ATTEMPT: the target tasks attending over those source prompts), which costs what a
 * trained version costs. Rows are the demo suite's validation inputs. With several backends each runs in a child
 * process (a process holds one tfjs backend), alternating which goes first.
 */
import { parseArgs } from 'node:util';
import { selectBackend } from '../src/backend/index.js';
import { demoJob } from '../src/config/demo-job.js';
import { PredictEngine, type PredictInput } from '../src/infer/index.js';
import { loadT5Model } from '../src/model/load-t5.js';
import { loadTokenizer } from '../src/model/tokenizer/index.js';
import type { EvalMode } from '../src/train/evaluate.js';
import { createStageMethod, methodTensors } from '../src/train/run-job.js';
import { loadTrainTasks } from '../src/train/task-source.js';
import { runBenchOnBackend } from './backend-child.js';

interface Values {
  backend: string;
  method: string;
  rows: string;
  batch: string;
  mode: string;
  reps: string;
  json: boolean;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string', default: 'node,wasm' },
      method: { type: 'string', default: 'attempt,prompt-tuning' },
      rows: { type: 'string', default: '256' },
      batch: { type: 'string', default: '32' },
      mode: { type: 'string', default: 'generate' },
      reps: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(
      'npm run bench -- predict [--backend node,wasm] [--method attempt,prompt-tuning] [--rows 256] [--batch 32] [--mode generate|rank] [--reps 3] [--json]',
    );
    return;
  }
  const backends = values.backend.split(',').filter(Boolean);
  if (backends.length > 1) return compareBackends(backends, values);
  const choice = await selectBackend({ requested: values.backend, log: (l) => console.error(l) });
  const job = demoJob();
  const tokenizer = await loadTokenizer(job.backbone.tokenizer);
  const { model } = loadT5Model(job.backbone.checkpoint);
  const [sources, targets] = [job.stages[0]!, job.stages[1]!];
  const sourceMethod = createStageMethod(sources, model, new Map(), job.maxSourceLength);
  const sourceTensors = methodTensors(
    sourceMethod,
    new Map(sourceMethod.params.map((p) => [p.name, p.variable.dataSync() as Float32Array])),
  );
  const nRows = Number(values.rows);
  const B = Number(values.batch);
  const reps = Number(values.reps);
  for (const name of values.method.split(',')) {
    const stage = name === 'attempt' ? targets : name === 'prompt-tuning' ? sources : undefined;
    if (!stage) throw new Error(`unknown --method '${name}': attempt or prompt-tuning`);
    const method =
      stage === sources ? sourceMethod : createStageMethod(stage, model, sourceTensors, job.maxSourceLength);
    const engine = new PredictEngine(model, tokenizer, method, {
      maxSourceLength: job.maxSourceLength,
      maxTargetLength: job.maxTargetLength,
      mode: values.mode as EvalMode,
      batchSize: B,
      tasks: stage.tasks,
    });
    // The same rows, grouped by task (single-task batches) and interleaved (every batch mixes all tasks).
    const perTask = Math.ceil(nRows / stage.tasks.length);
    const byTask = loadTrainTasks(job.data, stage.tasks).map((t) =>
      Array.from(
        { length: perTask },
        (_, i): PredictInput => ({
          task: t.name,
          source: t.validation[i % t.validation.length]!.source,
        }),
      ),
    );
    const mixed: PredictInput[] = [];
    for (let i = 0; i < perTask; i++) for (const rows of byTask) mixed.push(rows[i]!);
    engine.predict(mixed.slice(0, B)); // warm-up
    const best = { single: Infinity, mixed: Infinity, passes: Infinity };
    const kinds = ['single', 'mixed', 'passes'] as const;
    for (let r = 0; r < reps; r++) {
      // Rotate which goes first, so drift on a shared machine does not favour one.
      for (const which of kinds.map((_, k) => kinds[(k + r) % kinds.length]!)) {
        const t0 = performance.now();
        // Single-task: each task's rows on their own, so no batch holds two tasks.
        if (which === 'single') for (const rows of byTask) engine.predict(rows);
        else if (which === 'mixed') engine.predict(mixed);
        else for (let i = 0; i < mixed.length; i += B) engine.predictBatch(mixed.slice(i, i + B));
        best[which] = Math.min(best[which], (performance.now() - t0) / mixed.length);
      }
    }
    const row = {
      bench: 'predict',
      backend: choice.name,
      method: name,
      mode: values.mode,
      tasks: stage.tasks.length,
      rows: mixed.length,
      batch: B,
      singleTaskExamplesPerS: Number((1000 / best.single).toFixed(1)),
      mixedExamplesPerS: Number((1000 / best.mixed).toFixed(1)),
      mixedOverSingle: Number((best.single / best.mixed).toFixed(3)),
      mixedPassesExamplesPerS: Number((1000 / best.passes).toFixed(1)),
      mixedPassesOverSingle: Number((best.single / best.passes).toFixed(3)),
    };
    if (stage !== sources) method.dispose();
    if (values.json) console.log(JSON.stringify(row));
    else
      console.log(
        `${choice.name} ${name} (${row.tasks} tasks, ${values.mode}, batch ${B}): single-task ${row.singleTaskExamplesPerS} ex/s, ` +
          `mixed ${row.mixedExamplesPerS} ex/s (mixed/single ${row.mixedOverSingle}), ` +
          `mixed passes ${row.mixedPassesExamplesPerS} ex/s (${row.mixedPassesOverSingle})`,
      );
  }
  sourceMethod.dispose();
  model.dispose();
}

/** One child process per backend, alternating which goes first per method. */
function compareBackends(backends: string[], v: Values): void {
  let turn = 0;
  const failed = new Set<string>();
  for (const method of v.method.split(',')) {
    const order = turn++ % 2 === 0 ? backends : [...backends].reverse();
    for (const backend of order) {
      if (failed.has(backend)) continue;
      const args = [
        '--method',
        method,
        '--rows',
        v.rows,
        '--batch',
        v.batch,
        '--mode',
        v.mode,
        '--reps',
        v.reps,
      ];
      const res = runBenchOnBackend('predict', backend, args);
      if ('skipped' in res) {
        failed.add(backend);
        if (v.json) console.log(JSON.stringify({ bench: 'predict', backend, skipped: res.skipped }));
        else console.log(`${backend}: skipped (${res.skipped})`);
        continue;
      }
      if (v.json) console.log(res.line);
      else {
        const r = JSON.parse(res.line) as Record<string, number | string>;
        console.log(
          `${backend.padEnd(5)} ${method}: single-task ${r.singleTaskExamplesPerS} ex/s, mixed ${r.mixedExamplesPerS} ex/s (mixed/single ${r.mixedOverSingle}), mixed passes ${r.mixedPassesExamplesPerS} ex/s (${r.mixedPassesOverSingle})`,
        );
      }
    }
  }
}
