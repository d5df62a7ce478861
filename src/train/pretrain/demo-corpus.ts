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
} from '../../data/demo/index.js';
import type { Tokenizer } from '../../model/tokenizer/index.js';
import type { SupervisedPair } from './pretrain.js';

/** `count` passages of demo plain text; drawn from (seed, 'plain-text'), independent of the task splits. */
export function demoPretrainText(count: number, seed: number = DEFAULT_DEMO_SEED): string[] {
  return demoPlainText({ count, seed });
}

/** Training examples of the demo suite's source tasks (task prefix + fields -> label word). */
export function demoSourcePairs(seed: number = DEFAULT_DEMO_SEED): SupervisedPair[] {
  const suite = generateDemoSuite({ seed, tasks: demoTaskNames('source') });
  return suite.tasks.flatMap((t) => {
    if (t.def.role !== 'source') throw new Error(`internal: ${t.def.name} is not a source task`);
    return t.train.map((e) => ({ source: e.source, target: e.target }));
  });
}

/** Demo label words the tokenizer splits into more than one piece (they should all be single pieces). */
export function splitLabelWords(tokenizer: Tokenizer): string[] {
  return DEMO_LABEL_WORDS.filter((w) => tokenizer.encode(w, { addEos: false }).length !== 1);
}
