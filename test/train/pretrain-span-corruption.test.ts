import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mulberry32 } from '../../src/data/rng.js';
import {
  applyNoiseMask,
  packTokens,
  prefixLmExample,
  randomSpansNoiseMask,
  spanCorrupt,
} from '../../src/train/pretrain/index.js';

// Sentinels as in T5: <extra_id_0> is the highest id.
const sentinel = (i: number) => 99 - i;
const EOS = 1;

describe('span corruption', () => {
  test('the paper example: "Thank you <X> me to your party <Y> week"', () => {
    //          Thank you for inviting me to your party last week
    const toks = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
    const mask = [false, false, true, true, false, false, false, false, true, false];
    const { input, target } = applyNoiseMask(toks, mask, sentinel, EOS);
    assert.deepEqual(input, [10, 11, 99, 14, 15, 16, 17, 98, 19, EOS]);
    assert.deepEqual(target, [99, 12, 13, 98, 18, 97, EOS]);
  });

  test('a span at the start and one at the end', () => {
    const { input, target } = applyNoiseMask([5, 6, 7, 8], [true, false, false, true], sentinel, EOS);
    assert.deepEqual(input, [99, 6, 7, 98, EOS]);
    assert.deepEqual(target, [99, 5, 98, 8, 97, EOS]);
  });

  test('noise mask: 15% of the tokens in round(n / 3) spans, kept tokens first', () => {
    for (const length of [20, 48, 100, 7]) {
      for (let seed = 0; seed < 20; seed++) {
        const mask = randomSpansNoiseMask(length, mulberry32(seed));
        const noise = mask.filter(Boolean).length;
        const expectedNoise = Math.min(Math.max(Math.round(length * 0.15), 1), length - 1);
        assert.equal(noise, expectedNoise, `length ${length} seed ${seed}`);
        let spans = 0;
        mask.forEach((m, i) => {
          if (m && (i === 0 || !mask[i - 1])) spans++;
        });
        assert.equal(spans, Math.max(1, Math.round(expectedNoise / 3)), `length ${length} seed ${seed}`);
        assert.equal(mask[0], false);
      }
    }
  });

  test('deterministic in the rng seed, different across seeds', () => {
    const toks = Array.from({ length: 48 }, (_, i) => 10 + i);
    const a = spanCorrupt(toks, mulberry32(3), sentinel, EOS);
    const b = spanCorrupt(toks, mulberry32(3), sentinel, EOS);
    assert.deepEqual(a, b);
    const others = [4, 5, 6, 7, 8].map((s) =>
      JSON.stringify(spanCorrupt(toks, mulberry32(s), sentinel, EOS)),
    );
    assert.ok(others.some((o) => o !== JSON.stringify(a)));
  });

  test('input and target together hold every token once, in order', () => {
    const toks = Array.from({ length: 60 }, (_, i) => 10 + i);
    const { input, target } = spanCorrupt(toks, mulberry32(11), sentinel, EOS);
    const isSentinel = (t: number) => t > 90;
    // Rebuild the text: replace each sentinel of the input by its span from the target.
    const spans = new Map<number, number[]>();
    let cur: number[] | undefined;
    for (const t of target.slice(0, -1)) {
      if (isSentinel(t)) {
        cur = [];
        spans.set(t, cur);
      } else cur!.push(t);
    }
    const rebuilt = input.slice(0, -1).flatMap((t) => (isSentinel(t) ? spans.get(t)! : [t]));
    assert.deepEqual(rebuilt, toks);
    assert.equal(input.at(-1), EOS);
    assert.deepEqual(target.slice(-1), [EOS]);
  });

  test('packTokens concatenates passages into fixed-size chunks', () => {
    assert.deepEqual(
      packTokens(
        [
          [1, 2, 3],
          [4, 5],
          [6, 7, 8, 9],
        ],
        4,
      ),
      [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
      ],
    );
    assert.deepEqual(
      packTokens(
        [
          [1, 2, 3],
          [4, 5],
        ],
        3,
      ),
      [
        [1, 2, 3],
        [4, 5],
      ],
    );
  });
});

describe('prefix LM examples (T5 LM adaptation)', () => {
  test('input is a non-empty prefix, target the non-empty rest, each ending in </s>', () => {
    const passage = [10, 11, 12, 13, 14, 15];
    const rng = mulberry32(7);
    const cuts = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const { input, target } = prefixLmExample(passage, rng, EOS);
      assert.equal(input.at(-1), EOS);
      assert.equal(target.at(-1), EOS);
      assert.ok(input.length >= 2 && target.length >= 2, `empty side: ${input} | ${target}`);
      assert.deepEqual([...input.slice(0, -1), ...target.slice(0, -1)], passage);
      cuts.add(input.length - 1);
    }
    // Every split point 1..5 occurs: the cut is uniform over the passage, not fixed.
    assert.deepEqual([...cuts].sort(), [1, 2, 3, 4, 5]);
  });

  test('a two-token passage can only be cut in the middle', () => {
    const { input, target } = prefixLmExample([5, 6], mulberry32(1), EOS);
    assert.deepEqual(input, [5, EOS]);
    assert.deepEqual(target, [6, EOS]);
  });
});
