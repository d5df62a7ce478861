/**
 * What the demo backbone is pretrained on: unlabelled text from the demo generator (span corruption) and the
 * SOURCE tasks' training examples (supervised). The target tasks' data is never used: the backbone must not have
 * seen what prompt tuning is later measured on.
 */
import {
  DEFAULT_DEMO_SEED,
  DEMO_LABEL_WORDS,
  demoPlainText,
  demoTaskNames,
  generateDemoSuite,
  generateDemoTask,
} from '../../data/demo/index.js';
import type { Tokenizer } from '../../model/tokenizer/index.js';
import type { SupervisedPair } from './pretrain.js';

/** `count` passages of demo plain text; drawn from (seed, 'plain-text'), independent of the task splits. */
export function demoPretrainText(count: number, seed: number = DEFAULT_DEMO_SEED): string[] {
  return demoPlainText({ count, seed });
}

/**
 * Training examples of the demo suite's source tasks (task prefix + fields -> label word): the suite's training
 * split, then, when `perTask` is larger than it, more examples drawn from the same generators with another seed
 * (as T5's mixture draws from large task corpora). Extra examples never repeat a source of the suite's own
 * splits, so the validation and test splits (the probe, the source prompts' evaluation) stay unseen.
 */
export function demoSourcePairs(
  seed: number = DEFAULT_DEMO_SEED,
  perTask = 0,
  weights: Readonly<Record<string, number>> = {},
): SupervisedPair[] {
  const suite = generateDemoSuite({ seed, tasks: demoTaskNames('source') });
  const unknown = Object.keys(weights).filter((k) => !demoTaskNames('source').includes(k));
  if (unknown.length > 0) {
    throw new RangeError(
      `unknown demo source task(s) ${unknown.join(', ')}; known: ${demoTaskNames('source').join(', ')}`,
    );
  }
  if (Object.keys(weights).length > 0) {
    // Tasks not named keep weight 1 (relative to the named ones).
    weights = Object.fromEntries(demoTaskNames('source').map((n) => [n, weights[n] ?? 1]));
  }
  return suite.tasks.flatMap((t) => {
    if (t.def.role !== 'source') throw new Error(`internal: ${t.def.name} is not a source task`);
    const pairs = t.train.map((e) => ({ source: e.source, target: e.target }));
    const more = perTask - pairs.length;
    if (more > 0) {
      const taken = new Set([...t.train, ...t.validation, ...t.test].map((e) => e.source));
      // Over-draw, as some of the extra examples collide with the suite's own; keep the first `more` new ones.
      const extra = generateDemoTask(t.def, seed + 1, { train: more + (more >> 2), validation: 0, test: 0 });
      for (const e of extra.train) {
        if (pairs.length >= perTask) break;
        if (!taken.has(e.source)) pairs.push({ source: e.source, target: e.target });
      }
    }
    // A task's weight is spread over its pairs, so tasks are drawn in proportion to their weights whatever
    // their number of pairs; without weights pairs are drawn uniformly (tasks in proportion to their sizes).
    const w = weights[t.def.name];
    return w === undefined ? pairs : pairs.map((p) => ({ ...p, weight: w / pairs.length }));
  });
}

/** Demo label words the tokenizer splits into more than one piece (they should all be single pieces). */
export function splitLabelWords(tokenizer: Tokenizer): string[] {
  return DEMO_LABEL_WORDS.filter((w) => tokenizer.encode(w, { addEos: false }).length !== 1);
}
