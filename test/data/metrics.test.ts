import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  accuracy,
  averageRanks,
  binaryF1,
  getTask,
  macroF1,
  matthewsCorrelation,
  multircExactMatch,
  multircF1a,
  normalizeAnswer,
  parseScores,
  pearson,
  scoreTask,
  spearman,
  squadScores,
  tokenF1,
} from '../../src/data/index.js';

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

describe('metrics against hand-computed values', () => {
  it('accuracy', () => {
    // 3 of 4 equal (whitespace trimmed) -> 75
    assert.equal(accuracy(['1', ' 0', '1', 'x'], ['1', '0', '1', '1']), 75);
    assert.throws(() => accuracy(['1'], ['1', '0']), /must pair up/);
  });

  it('binary F1 with invalid predictions counted as wrong', () => {
    // targets 1 1 0 0 1, predictions 1 0 1 0 'maybe'
    // 'maybe' on a positive target becomes 0 -> FN. TP=1 (i0), FN=2 (i1, i4), FP=1 (i2), TN=1.
    // F1 = 2TP / (2TP + FP + FN) = 2 / (2 + 1 + 2) = 0.4 -> 40
    close(binaryF1(['1', '0', '1', '0', 'maybe'], ['1', '1', '0', '0', '1']), 40);
    // Invalid on a negative target becomes 1 -> FP: TP=1, FP=1, FN=0 -> 2/3
    close(binaryF1(['1', 'x'], ['1', '0']), (100 * 2) / 3);
    // No positives anywhere: 0 (scikit-learn's zero_division)
    assert.equal(binaryF1(['0'], ['0']), 0);
  });

  it('Matthews correlation', () => {
    // TP=2, TN=1, FP=1, FN=1 (targets 1 1 1 0 0, preds 1 1 0 1 0)
    // MCC = (2*1 - 1*1) / sqrt((2+1)(2+1)(1+1)(1+1)) = 1 / sqrt(36) = 1/6
    close(matthewsCorrelation(['1', '1', '0', '1', '0'], ['1', '1', '1', '0', '0']), 100 / 6);
    // Perfect and inverted
    close(matthewsCorrelation(['1', '0'], ['1', '0']), 100);
    close(matthewsCorrelation(['0', '1'], ['1', '0']), -100);
    // Constant prediction: denominator 0 -> 0
    assert.equal(matthewsCorrelation(['1', '1'], ['1', '0']), 0);
    // Invalid counts as wrong: '?' on target 1 -> 0, so TP=0 TN=1 FP=0 FN=1 -> (0*1-0*1)/... = 0 (pred col 1 empty)
    assert.equal(matthewsCorrelation(['?', '0'], ['1', '0']), 0);
  });

  it('Pearson and Spearman (tie-averaged ranks)', () => {
    // x = 1 2 3, y = 2 4 7: means 2, 13/3; dx = -1 0 1; dy = -7/3 -1/3 8/3
    // sxy = 7/3 + 8/3 = 5; sxx = 2; syy = (49 + 1 + 64)/9 = 114/9; r = 5 / sqrt(2 * 114/9) = 15 / sqrt(228)
    close(pearson([1, 2, 3], [2, 4, 7]), (100 * 15) / Math.sqrt(228));
    // Ranks of [10, 20, 20, 30] = [1, 2.5, 2.5, 4]
    assert.deepEqual(averageRanks([10, 20, 20, 30]), [1, 2.5, 2.5, 4]);
    // Spearman of x=[1,2,2,3] vs y=[1,3,2,4]: ranks rx=[1,2.5,2.5,4], ry=[1,3,2,4]
    // means 2.5; drx=[-1.5,0,0,1.5], dry=[-1.5,0.5,-0.5,1.5]; sxy=2.25+2.25=4.5; sxx=4.5; syy=2.25+.25+.25+2.25=5
    // rho = 4.5 / sqrt(4.5*5) = sqrt(4.5/5) = sqrt(0.9)
    close(spearman([1, 2, 2, 3], [1, 3, 2, 4]), 100 * Math.sqrt(0.9));
    // Monotone but non-linear: Spearman 100, Pearson below
    close(spearman([1, 2, 3, 4], [1, 4, 9, 100]), 100);
    assert.ok(pearson([1, 2, 3, 4], [1, 4, 9, 100]) < 100);
    assert.equal(pearson([1, 1, 1], [1, 2, 3]), 0);
  });

  it('STS-B: a non-numeric prediction is replaced by the far end of the scale from its gold', () => {
    // gold 4.2 (>= 2.5) -> worst is 0; gold 1.0 (< 2.5) -> worst is 5
    const p = parseScores(['3.8', 'five', '', '1.2'], ['4.2', '4.2', '1.0', '1.0']);
    assert.deepEqual(p.predictions, [3.8, 0, 5, 1.2]);
    assert.equal(p.invalid, 2);
    // So an invalid prediction can only hurt: with golds 4.2, 4.2, 1.0, 1.0 the replaced values anti-correlate.
    assert.ok(pearson(p.predictions, p.targets) < 0);
  });

  it('macro-F1 over 3 classes', () => {
    // targets 0 0 1 2 2 2, preds 0 1 1 2 0 'x'
    // class 0: TP=1 FP=1 FN=1 -> 2/4 = .5; class 1: TP=1 FP=1 FN=0 -> 2/3; class 2: TP=1 FP=0 FN=2 -> 2/4 = .5
    // macro = (.5 + 2/3 + .5) / 3 = 5/9
    close(
      macroF1(['0', '1', '1', '2', '0', 'x'], ['0', '0', '1', '2', '2', '2'], ['0', '1', '2']),
      (100 * 5) / 9,
    );
    // A class never predicted nor present scores 0: one class perfect out of 3 -> 1/3
    close(macroF1(['0'], ['0'], ['0', '1', '2']), 100 / 3);
  });

  it('MultiRC F1a and per-question exact match', () => {
    // q1: answers (1,0) predicted (1,0) -> exact; q2: (1,1) predicted (1,0) -> not; q3: (0) predicted (0) -> exact
    const t = ['1', '0', '1', '1', '0'];
    const p = ['1', '0', '1', '0', '0'];
    const g = ['q1', 'q1', 'q2', 'q2', 'q3'];
    close(multircExactMatch(p, t, g), (100 * 2) / 3);
    // F1a over all answers: TP=2, FP=0, FN=1 -> 4/5
    close(multircF1a(p, t), 80);
  });

  it('SQuAD normalisation, EM and F1 with the max over gold answers', () => {
    assert.equal(normalizeAnswer('The  Quick, brown fox!'), 'quick brown fox');
    assert.equal(normalizeAnswer('an Apple a day'), 'apple day');
    assert.equal(normalizeAnswer('theatre'), 'theatre');
    // pred "the big cat" vs gold "a cat": tokens [big, cat] vs [cat]: same=1, P=1/2, R=1 -> F1 = 2/3
    close(tokenF1('the big cat', 'a cat'), 2 / 3);
    // Two examples: (1) EM with the second gold; (2) F1 2/3 against 'a cat', 0 against 'dog'
    const s = squadScores(
      ['Paris.', 'the big cat'],
      [
        ['France', 'paris'],
        ['dog', 'a cat'],
      ],
    );
    close(s.em, 50);
    close(s.f1, (100 * (1 + 2 / 3)) / 2);
  });

  it('scoreTask uses the task metric list and averages them', () => {
    const mrpc = getTask('mrpc');
    // targets 1 0 1, preds 1 1 1: accuracy 2/3; F1: TP=2 FP=1 FN=0 -> 4/5
    const r = scoreTask(mrpc, ['1', '1', '1'], [{ target: '1' }, { target: '0' }, { target: '1' }]);
    close(r.metrics.f1 as number, 80);
    close(r.metrics.accuracy as number, (100 * 2) / 3);
    close(r.score, (80 + 200 / 3) / 2);
    const stsb = scoreTask(
      getTask('stsb'),
      ['1.0', 'oops', '3.0'],
      [{ target: '1.0' }, { target: '2.0' }, { target: '3.0' }],
    );
    assert.equal(stsb.invalid, 1);
    assert.ok(stsb.metrics.pearson !== undefined && stsb.metrics.spearman !== undefined);
  });
});
