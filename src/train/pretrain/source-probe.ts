/**
 * A cheap probe of what a backbone being pretrained has learned: accuracy on the validation split of the demo
 * SOURCE tasks (classification by label scoring, like evaluation; generated answers by greedy decoding, exact
 * match). Prompt tuning on the targets can only work once the backbone solves the skills they share with the
 * sources, so this says when pretraining has done its job.
 */
import * as tf from '@tensorflow/tfjs-core';

import { demoTaskNames, generateDemoSuite } from '../../data/demo/index.js';
import type { T5Model } from '../../model/t5/index.js';
import type { Tokenizer } from '../../model/tokenizer/index.js';

/** Task name -> accuracy in [0, 1]. */
export type ProbeScores = Record<string, number>;

export interface SourceProbeOptions {
  seed: number;
  /** Validation examples per task (the first ones). */
  examples: number;
  batchSize?: number;
  maxSourceTokens: number;
}

export function demoSourceProbe(
  tokenizer: Tokenizer,
  o: SourceProbeOptions,
): (model: T5Model) => ProbeScores {
  const suite = generateDemoSuite({ seed: o.seed, tasks: demoTaskNames('source') });
  const eos = tokenizer.eosId;
  const tasks = suite.tasks.map((t) => ({
    name: t.def.name,
    labels: t.def.labels,
    examples: t.validation.slice(0, o.examples).map((e) => {
      let ids = tokenizer.encode(e.source);
      if (ids.length > o.maxSourceTokens) ids = [...ids.slice(0, o.maxSourceTokens - 1), eos];
      return { ids, target: e.target };
    }),
  }));
  const batchSize = o.batchSize ?? 32;
  return (model) => {
    const scores: ProbeScores = {};
    for (const task of tasks) {
      const candidates = task.labels?.map((l) => tokenizer.encode(l));
      let correct = 0;
      for (let s = 0; s < task.examples.length; s += batchSize) {
        const chunk = task.examples.slice(s, s + batchSize);
        const L = Math.max(...chunk.map((e) => e.ids.length));
        const ids = new Int32Array(chunk.length * L).fill(tokenizer.padId);
        const mask = new Float32Array(chunk.length * L);
        chunk.forEach((e, b) => {
          ids.set(e.ids, b * L);
          mask.fill(1, b * L, b * L + e.ids.length);
        });
        const idsT = tf.tensor2d(ids, [chunk.length, L], 'int32');
        const maskT = tf.tensor2d(mask, [chunk.length, L]);
        const embeds = model.embed(idsT);
        try {
          if (candidates && task.labels) {
            const rows = model.scoreCandidates(embeds, maskT, candidates);
            rows.forEach((row, i) => {
              if (task.labels![row.indexOf(Math.max(...row))] === chunk[i]!.target) correct++;
            });
          } else {
            const maxLen =
              Math.max(...chunk.map((e) => tokenizer.encode(e.target, { addEos: false }).length)) + 1;
            model.greedyDecode(embeds, maskT, maxLen).forEach((out, i) => {
              if (tokenizer.decode(out).trim() === chunk[i]!.target) correct++;
            });
          }
        } finally {
          tf.dispose([idsT, maskT, embeds]);
        }
      }
      scores[task.name] = task.examples.length > 0 ? correct / task.examples.length : 0;
    }
    return scores;
  };
}
