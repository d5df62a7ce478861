import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_DEMO_SEED, demoTaskNames, generateDemoSuite } from '../../src/data/demo/index.js';
import { mulberry32 } from '../../src/data/rng.js';
import { demoSourcePairs } from '../../src/train/pretrain/index.js';
import { weightedPicker } from '../../src/train/pretrain/pretrain.js';

describe('pretraining source examples (pretrain --source-examples, --source-weights)', () => {
  const suite = generateDemoSuite({ seed: DEFAULT_DEMO_SEED, tasks: demoTaskNames('source') });
  const prefixOf = (source: string) => source.split(' ')[0];

  test('the default is the suite training split; more examples never repeat a validation or test source', () => {
    const base = demoSourcePairs(DEFAULT_DEMO_SEED);
    assert.equal(
      base.length,
      suite.tasks.reduce((n, t) => n + t.train.length, 0),
    );
    const more = demoSourcePairs(DEFAULT_DEMO_SEED, 4000);
    assert.ok(more.length > base.length, `${more.length} pairs, ${base.length} without --source-examples`);
    // The suite's own training examples come first, unchanged.
    const firstTask = suite.tasks[0]!;
    assert.deepEqual(
      more.slice(0, firstTask.train.length).map((p) => p.source),
      firstTask.train.map((e) => e.source),
    );
    const held = new Set(suite.tasks.flatMap((t) => [...t.validation, ...t.test].map((e) => e.source)));
    const leaked = more.filter((p) => held.has(p.source));
    assert.equal(leaked.length, 0, `extra examples repeat held-out sources: ${leaked[0]?.source}`);
    assert.equal(new Set(more.map((p) => p.source)).size, more.length, 'a source appears twice');
  });

  test('task weights: each task draws in proportion to its weight, whatever its number of pairs', () => {
    const pairs = demoSourcePairs(DEFAULT_DEMO_SEED, 0, { 'demo-nli': 3, 'demo-topic': 0.5 });
    const pick = weightedPicker(pairs);
    const rng = mulberry32(7);
    const counts = new Map<string, number>();
    const n = 60_000;
    for (let i = 0; i < n; i++) {
      const p = prefixOf(pairs[pick(rng)]!.source)!;
      counts.set(p, (counts.get(p) ?? 0) + 1);
    }
    // Weights 1 (sentiment, paraphrase, qa, arithmetic), 3 (nli), 0.5 (topic): total 7.5.
    const expect: Record<string, number> = {
      sentiment: 1,
      nli: 3,
      paraphrase: 1,
      qa: 1,
      math: 1,
      topic: 0.5,
    };
    for (const [prefix, w] of Object.entries(expect)) {
      const share = (counts.get(prefix) ?? 0) / n;
      assert.ok(
        Math.abs(share - w / 7.5) < 0.01,
        `${prefix}: share ${share.toFixed(3)}, expected ${(w / 7.5).toFixed(3)}`,
      );
    }
    assert.throws(
      () => demoSourcePairs(DEFAULT_DEMO_SEED, 0, { 'demo-entail': 2 }),
      /unknown demo source task/,
    );
  });

  test('without weights the draw is the uniform one pretraining always used', () => {
    const pairs = demoSourcePairs(DEFAULT_DEMO_SEED);
    const pick = weightedPicker(pairs);
    const a = mulberry32(11);
    const b = mulberry32(11);
    for (let i = 0; i < 100; i++) assert.equal(pick(a), Math.floor(b() * pairs.length));
  });
});
