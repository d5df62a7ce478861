/**
 * Backbone speed: forward + backward (to the input embeddings, as prompt training does) of the frozen T5, in
 * ms/example and achieved GFLOP/s counted from the model's matmul FLOPs, as a ratio of the same backend's plain 2-D
 * matmul GFLOP/s measured in the same run (before and after the model, best of several, so a noisy shared machine
 * biases the ratio down, not up).
 *
 *   npm run bench -- backbone [--backend node,wasm] [--configs tiny,t5-small] [--batch 8] [--src-len 128]
 *                            [--tgt-len 128,4] [--steps 3] [--json]
 *
 * With several backends (the default: the native backend and wasm), each (config, target length) runs once per
 * backend in its own child process (a process holds one tfjs backend), alternating which backend goes first, and
 * a `speedup` row gives the first backend's step time over the others'. A backend that cannot load is reported
 * and skipped. Children get the malloc settings the workers get (MALLOC_ENV).
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../src/backend/index.js';
import { makeTinyT5, type TinyT5Options } from '../src/model/checkpoint/index.js';
import { T5Model } from '../src/model/t5/index.js';
import { runBenchOnBackend } from './backend-child.js';

export const CONFIGS: Record<string, TinyT5Options> = {
  tiny: { variant: 'v1', vocabSize: 512, dModel: 64, dKv: 16, numHeads: 4, dFf: 256, numLayers: 2 },
  't5-small': { variant: 'v1', vocabSize: 32128, dModel: 512, dKv: 64, numHeads: 8, dFf: 2048, numLayers: 6 },
};

/** Best-of-n GFLOP/s of a plain [m,k] x [k,n] matmul with a constant right operand, like a frozen linear layer. */
function matmulGflops(m: number, k: number, n: number, reps = 5): number {
  const a = tf.randomNormal([m, k]) as tf.Tensor2D;
  const b = tf.randomNormal([k, n]) as tf.Tensor2D;
  tf.matMul(a, b).dispose();
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const c = tf.matMul(a, b);
    c.dataSync();
    best = Math.min(best, performance.now() - t0);
    c.dispose();
  }
  a.dispose();
  b.dispose();
  return (2 * m * k * n) / (best * 1e6);
}

export function baseline(d: number, dff: number, rows: number): number {
  // The model's dominant shapes: d x d (attention projections) and d x dff (feed-forward).
  return Math.max(matmulGflops(rows, d, d), matmulGflops(rows, d, dff));
}

/** The timed work: inputs for one batch and a step running forward + backward to the input embeddings. */
export interface BackboneStep {
  /** One forward + backward; returns the loss (mean token cross-entropy) after the gradient reached the host. */
  step(): number;
  /** Matmul FLOPs of one step: the frozen linears' forward and input-gradient, attention's forward and backward. */
  flops: number;
  dispose(): void;
}

/**
 * Deterministic ids and labels (the same on every run and in bench/peer_torch.py), all masks ones, and the input
 * embeddings looked up once outside the step, as prompt training does.
 */
export function backboneStep(model: T5Model, B: number, L: number, T: number): BackboneStep {
  const V = model.config.vocabSize;
  const ids = tf.tensor2d(
    Int32Array.from({ length: B * L }, (_, i) => 2 + ((i * 7919) % (V - 2))),
    [B, L],
    'int32',
  );
  const mask = tf.ones([B, L]) as tf.Tensor2D;
  const labels = tf.tensor2d(
    Int32Array.from({ length: B * T }, (_, i) => 2 + ((i * 104729) % (V - 2))),
    [B, T],
    'int32',
  );
  const labelMask = tf.ones([B, T]) as tf.Tensor2D;
  const embeds = model.embed(ids);
  const f = model.matmulFlops(B, L, T);
  return {
    step: () =>
      tf.tidy(() => {
        const { value, grad } = tf.valueAndGrad((e: tf.Tensor) =>
          model.loss({ inputsEmbeds: e as tf.Tensor3D, attentionMask: mask, labels, labelMask }),
        )(embeds);
        grad.dataSync();
        return value.dataSync()[0]!;
      }),
    flops: 2 * f.linear + 3 * f.attention,
    dispose: () => tf.dispose([ids, mask, labels, labelMask, embeds]),
  };
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string', default: 'node,wasm' },
      configs: { type: 'string', default: 'tiny,t5-small' },
      batch: { type: 'string', default: '8' },
      'src-len': { type: 'string', default: '128' },
      'tgt-len': { type: 'string', default: '128,4' },
      steps: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(
      'npm run bench -- backbone [--backend node,wasm] [--configs tiny,t5-small] [--batch 8] [--src-len 128] [--tgt-len 128,4] [--steps 3] [--json]',
    );
    return;
  }
  const backends = values.backend.split(',').filter(Boolean);
  if (backends.length > 1) return compareBackends(backends, values);
  const choice = await selectBackend({ requested: values.backend, log: (l) => console.error(l) });
  const B = Number(values.batch);
  const L = Number(values['src-len']);
  const steps = Number(values.steps);
  for (const name of values.configs.split(',')) {
    const opts = CONFIGS[name];
    if (!opts) throw new Error(`unknown config '${name}'; known: ${Object.keys(CONFIGS).join(', ')}`);
    const { config, tensors } = makeTinyT5({ ...opts, seed: 1 });
    const model = T5Model.fromWeights(config, tensors);
    tensors.clear();
    for (const T of values['tgt-len'].split(',').map(Number)) {
      const before = baseline(config.dModel, config.dFf, B * L);
      const work = backboneStep(model, B, L, T);
      work.step(); // warm-up: XNNPACK packs each frozen weight once
      const times: number[] = [];
      for (let s = 0; s < steps; s++) {
        const t0 = performance.now();
        work.step();
        times.push(performance.now() - t0);
      }
      const after = baseline(config.dModel, config.dFf, B * L);
      const matmulRate = Math.max(before, after);
      const ms = Math.min(...times);
      const flops = work.flops;
      const gflops = flops / (ms * 1e6);
      const row = {
        bench: 'backbone',
        backend: choice.name,
        config: name,
        batch: B,
        srcLen: L,
        tgtLen: T,
        stepMs: Number(ms.toFixed(1)),
        msPerExample: Number((ms / B).toFixed(2)),
        gflopPerStep: Number((flops / 1e9).toFixed(2)),
        gflops: Number(gflops.toFixed(2)),
        matmulGflops: Number(matmulRate.toFixed(2)),
        ratio: Number((gflops / matmulRate).toFixed(3)),
        tensorsAfter: tf.memory().numTensors,
      };
      if (values.json) console.log(JSON.stringify(row));
      else {
        console.log(
          `${name} B=${B} src=${L} tgt=${T}: ${row.stepMs} ms/step, ${row.msPerExample} ms/example, ` +
            `${row.gflops} GFLOP/s of ${row.gflopPerStep} GFLOP; plain matmul ${row.matmulGflops} GFLOP/s; ratio ${row.ratio}`,
        );
      }
      work.dispose();
    }
    model.dispose();
  }
}

interface Row {
  bench: string;
  backend: string;
  config: string;
  tgtLen: number;
  stepMs: number;
  ratio: number;
}

/** One child process per (config, target length, backend), alternating the order of the backends. */
function compareBackends(
  backends: string[],
  v: { configs: string; batch: string; 'src-len': string; 'tgt-len': string; steps: string; json: boolean },
): void {
  const failed = new Set<string>();
  let turn = 0;
  for (const config of v.configs.split(',')) {
    for (const T of v['tgt-len'].split(',')) {
      const order = turn++ % 2 === 0 ? backends : [...backends].reverse();
      const rows = new Map<string, Row>();
      for (const backend of order) {
        if (failed.has(backend)) continue;
        const args = ['--configs', config, '--tgt-len', T, '--batch', v.batch, '--src-len', v['src-len']];
        const res = runBenchOnBackend('backbone', backend, [...args, '--steps', v.steps]);
        if ('skipped' in res) {
          failed.add(backend);
          if (v.json) console.log(JSON.stringify({ bench: 'backbone', backend, skipped: res.skipped }));
          else console.log(`${backend}: skipped (${res.skipped})`);
          continue;
        }
        const line = res.line;
        const row = JSON.parse(line) as Row;
        rows.set(backend, row);
        if (v.json) console.log(line);
        else {
          console.log(
            `${backend.padEnd(5)} ${config} tgt=${T}: ${row.stepMs} ms/step; ${row.ratio} of its own plain-matmul rate`,
          );
        }
      }
      const first = rows.get(backends[0]!);
      for (const [b, row] of rows) {
        if (!first || b === backends[0]) continue;
        const speedup = Number((row.stepMs / first.stepMs).toFixed(2));
        if (v.json) {
          console.log(
            JSON.stringify({
              bench: 'backbone',
              speedup,
              of: backends[0],
              over: b,
              config,
              tgtLen: Number(T),
            }),
          );
        } else console.log(`      ${backends[0]} is ${speedup}x faster than ${b} (${config}, tgt=${T})`);
      }
    }
  }
}
