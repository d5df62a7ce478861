/**
 * Evaluation speed: greedy decoding in generated tokens/s and label scoring in examples/s, each by the reference
 * path that recomputes (`kvCache: false`: the whole decoder re-run on the growing prefix; the encoder output and
 * cross-attention keys/values repeated per candidate label) and by the cached path, alternating the two within one
 * run (best of --reps each) and checking that they agree.
 *
 *   npm run bench -- decode [--backend node,wasm] [--configs tiny,t5-small] [--batch 8] [--src-len 128]
 *                          [--new-tokens 32] [--candidates 26] [--reps 2] [--json]
 *
 * Decoding never stops early (the bench model has no reachable </s>), so every run generates batch x new-tokens
 * tokens. Scoring uses --candidates label strings of 2 to 4 tokens (STS-B has 26). With several backends each
 * config runs in a child process per backend (a process holds one tfjs backend), alternating which goes first.
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../src/backend/index.js';
import { makeTinyT5 } from '../src/model/checkpoint/index.js';
import { T5Model } from '../src/model/t5/index.js';
import { CONFIGS } from './backbone.js';
import { runBenchOnBackend } from './backend-child.js';

interface Values {
  backend: string;
  configs: string;
  batch: string;
  'src-len': string;
  'new-tokens': string;
  candidates: string;
  reps: string;
  json: boolean;
}

function time<T>(f: () => T): { ms: number; value: T } {
  const t0 = performance.now();
  const value = f();
  return { ms: performance.now() - t0, value };
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string', default: 'node,wasm' },
      configs: { type: 'string', default: 'tiny,t5-small' },
      batch: { type: 'string', default: '8' },
      'src-len': { type: 'string', default: '128' },
      'new-tokens': { type: 'string', default: '32' },
      candidates: { type: 'string', default: '26' },
      reps: { type: 'string', default: '2' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(
      'npm run bench -- decode [--backend node,wasm] [--configs tiny,t5-small] [--batch 8] [--src-len 128] [--new-tokens 32] [--candidates 26] [--reps 2] [--json]',
    );
    return;
  }
  const backends = values.backend.split(',').filter(Boolean);
  if (backends.length > 1) return compareBackends(backends, values);
  const choice = await selectBackend({ requested: values.backend, log: (l) => console.error(l) });
  const B = Number(values.batch);
  const L = Number(values['src-len']);
  const N = Number(values['new-tokens']);
  const C = Number(values.candidates);
  const reps = Number(values.reps);
  for (const name of values.configs.split(',')) {
    const opts = CONFIGS[name];
    if (!opts) throw new Error(`unknown config '${name}'; known: ${Object.keys(CONFIGS).join(', ')}`);
    const { config, tensors } = makeTinyT5({ ...opts, seed: 1 });
    // argMax never returns -1, so no example stops early and both paths always generate B x N tokens.
    const model = T5Model.fromWeights({ ...config, eosTokenId: -1 }, tensors);
    tensors.clear();
    const V = config.vocabSize;
    const ids = tf.tensor2d(
      Int32Array.from({ length: B * L }, (_, i) => 2 + ((i * 7919) % (V - 2))),
      [B, L],
      'int32',
    );
    // Inputs of different lengths, as a real evaluation batch padded to its longest example.
    const mask = tf.tensor2d(
      Float32Array.from({ length: B * L }, (_, i) => (i % L < L - ((Math.floor(i / L) * 5) % L) ? 1 : 0)),
      [B, L],
    );
    const embeds = model.embed(ids);
    const cands = Array.from({ length: C }, (_, c) => [
      ...Array.from({ length: 1 + (c % 3) }, (_, t) => 2 + ((c * 31 + t * 17) % (V - 2))),
      1,
    ]);
    const decode = (kvCache: boolean) => model.greedyDecode(embeds, mask as tf.Tensor2D, N, { kvCache });
    const score = (kvCache: boolean) =>
      model.scoreCandidates(embeds, mask as tf.Tensor2D, cands, { kvCache });
    // Warm-up: XNNPACK packs each frozen weight once; the position-bias cache fills.
    decode(true);
    score(true);
    const best = { decodeRef: Infinity, decode: Infinity, scoreRef: Infinity, score: Infinity };
    let sameTokens = true;
    let maxScoreDiff = 0;
    for (let r = 0; r < reps; r++) {
      // Alternate which path goes first, so drift on a shared machine does not favour one.
      const order = r % 2 === 0 ? [false, true] : [true, false];
      const toks: number[][][] = [];
      const scores: number[][][] = [];
      for (const cached of order) {
        const d = time(() => decode(cached));
        const s = time(() => score(cached));
        if (cached) {
          best.decode = Math.min(best.decode, d.ms);
          best.score = Math.min(best.score, s.ms);
        } else {
          best.decodeRef = Math.min(best.decodeRef, d.ms);
          best.scoreRef = Math.min(best.scoreRef, s.ms);
        }
        toks.push(d.value);
        scores.push(s.value);
      }
      sameTokens &&= JSON.stringify(toks[0]) === JSON.stringify(toks[1]);
      scores[0]!.forEach((row, b) => {
        row.forEach((x, c) => {
          maxScoreDiff = Math.max(maxScoreDiff, Math.abs(x - scores[1]![b]![c]!) / Math.max(1, Math.abs(x)));
        });
      });
    }
    const rate = (n: number, ms: number) => Number(((n * 1000) / ms).toFixed(1));
    const row = {
      bench: 'decode',
      backend: choice.name,
      config: name,
      batch: B,
      srcLen: L,
      newTokens: N,
      candidates: C,
      uncachedTokensPerS: rate(B * N, best.decodeRef),
      cachedTokensPerS: rate(B * N, best.decode),
      decodeSpeedup: Number((best.decodeRef / best.decode).toFixed(2)),
      uncachedExamplesPerS: rate(B, best.scoreRef),
      cachedExamplesPerS: rate(B, best.score),
      scoreSpeedup: Number((best.scoreRef / best.score).toFixed(2)),
      sameTokens,
      maxScoreRelDiff: Number(maxScoreDiff.toExponential(2)),
    };
    tf.dispose([ids, mask, embeds]);
    model.dispose();
    if (values.json) console.log(JSON.stringify(row));
    else {
      console.log(
        `${choice.name} ${name} B=${B} src=${L}: decoding ${row.uncachedTokensPerS} -> ${row.cachedTokensPerS} tokens/s ` +
          `(${row.decodeSpeedup}x, ${N} new tokens); label scoring ${row.uncachedExamplesPerS} -> ` +
          `${row.cachedExamplesPerS} examples/s (${row.scoreSpeedup}x, ${C} candidates); same tokens: ${sameTokens}; ` +
          `max score difference ${row.maxScoreRelDiff} (relative)`,
      );
    }
  }
}

/** One child process per (config, backend), alternating the order of the backends. */
function compareBackends(backends: string[], v: Values): void {
  const failed = new Set<string>();
  let turn = 0;
  for (const config of v.configs.split(',')) {
    const order = turn++ % 2 === 0 ? backends : [...backends].reverse();
    for (const backend of order) {
      if (failed.has(backend)) continue;
      const args = ['--configs', config, '--batch', v.batch, '--src-len', v['src-len']];
      args.push('--new-tokens', v['new-tokens'], '--candidates', v.candidates, '--reps', v.reps);
      const res = runBenchOnBackend('decode', backend, args);
      if ('skipped' in res) {
        failed.add(backend);
        if (v.json) console.log(JSON.stringify({ bench: 'decode', backend, skipped: res.skipped }));
        else console.log(`${backend}: skipped (${res.skipped})`);
        continue;
      }
      const line = res.line;
      if (v.json) console.log(line);
      else {
        const row = JSON.parse(line) as Record<string, number | boolean>;
        console.log(
          `${backend.padEnd(5)} ${config}: decoding ${row.uncachedTokensPerS} -> ${row.cachedTokensPerS} tokens/s ` +
            `(${row.decodeSpeedup}x); label scoring ${row.uncachedExamplesPerS} -> ${row.cachedExamplesPerS} ` +
            `examples/s (${row.scoreSpeedup}x); same tokens: ${row.sameTokens}`,
        );
      }
    }
  }
}
