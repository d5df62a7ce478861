/**
 * Issue "Recovery that never gives up on a healthy job", item 7: every numeric field of a job config is bounded,
 * refused with its range and the reason, when the config is read (before anything is allocated).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  checkStepsOverride,
  JOB_RANGES,
  JobConfigError,
  parseJobConfig,
} from '../../src/config/job-config.js';
import { MAX_METHOD_SIZE } from '../../src/methods/config-fields.js';

// biome-ignore lint/suspicious/noExplicitAny: raw job JSON edited freely
type Raw = Record<string, any>;

const base = (): Raw => ({
  jobId: 'bounds',
  backbone: 'assets/demo-backbone',
  data: { suite: 'demo' },
  stages: [
    {
      name: 's1',
      method: { name: 'prompt-tuning', promptLength: 4 },
      tasks: ['demo-sentiment'],
      train: { steps: 10, batchSize: 8, microBatchSize: 4, warmupSteps: 0 },
    },
  ],
});

/** Parses base() with `edit` applied; returns the error (fails when none is thrown). */
function refusal(edit: (r: Raw) => void): JobConfigError {
  const raw = base();
  edit(raw);
  try {
    parseJobConfig(raw, { source: 'job.json' });
  } catch (e) {
    assert.ok(e instanceof JobConfigError, String(e));
    return e;
  }
  assert.fail(`accepted ${JSON.stringify(raw)}`);
}

const train = (r: Raw) => r.stages[0].train as Raw;

describe('job config bounds', () => {
  test('the values the issue found are refused, naming the field, the range and why', () => {
    const cases: [string, (r: Raw) => void, RegExp][] = [
      [
        'batchSize 1e9',
        (r) => {
          train(r).batchSize = 1e9;
        },
        /stages\[0\]\.train\.batchSize: expected an integer from 1 to 65536 \(examples in one global batch.*\), got 1000000000/,
      ],
      [
        'steps 1e300',
        (r) => {
          train(r).steps = 1e300;
        },
        /stages\[0\]\.train\.steps: expected an integer from 1 to 10000000 \(optimizer steps of a stage.*\), got 1e\+300/,
      ],
      [
        'numeric lr -1',
        (r) => {
          train(r).lr = -1;
        },
        /stages\[0\]\.train\.lr: expected a number from 0 to 10 \(a learning rate.*\), got -1/,
      ],
      [
        'numeric lr 1e38',
        (r) => {
          train(r).lr = 1e38;
        },
        /stages\[0\]\.train\.lr: expected a number from 0 to 10 .*got 1e\+38/,
      ],
      [
        'lr.attention 1e38',
        (r) => {
          train(r).lr = { prompt: 0.3, attention: 1e38 };
        },
        /stages\[0\]\.train\.lr\.attention: expected a number from 0 to 10/,
      ],
      [
        'top-level train.steps',
        (r) => {
          r.train = { steps: 1e300 };
        },
        /^job\.json: train\.steps: expected an integer from 1 to 10000000/,
      ],
      [
        'maxSourceLength 1e9',
        (r) => {
          r.maxSourceLength = 1e9;
        },
        /maxSourceLength: expected an integer from 2 to 8192 \(input tokens; attention memory grows with its square\)/,
      ],
    ];
    for (const [label, edit, re] of cases) assert.match(refusal(edit).message, re, label);
  });

  test('promptLength 1e9 is refused by the method config, with the reason', () => {
    const e = refusal((r) => {
      r.stages[0].method.promptLength = 1e9;
    });
    assert.match(
      e.message,
      new RegExp(
        `stages\\[0\\]\\.method: .*promptLength.*expected an integer from 1 to ${MAX_METHOD_SIZE} \\(a size that becomes tensor rows every worker holds\\), got 1000000000`,
      ),
    );
  });

  test('every bounded field refuses one past each end and accepts both ends', () => {
    const fields: [string, keyof typeof JOB_RANGES, (r: Raw, v: number) => void][] = [
      ['steps', 'steps', (r, v) => (train(r).steps = v)],
      ['batchSize', 'batchSize', (r, v) => (train(r).batchSize = v)],
      ['microBatchSize', 'microBatchSize', (r, v) => (train(r).microBatchSize = v)],
      ['seed', 'seed', (r, v) => (train(r).seed = v)],
      ['lr', 'lr', (r, v) => (train(r).lr = v)],
      ['lr.prompt', 'lr', (r, v) => (train(r).lr = { prompt: v })],
      ['weightDecay', 'weightDecay', (r, v) => (train(r).weightDecay = v)],
      ['clipNorm', 'clipNorm', (r, v) => (train(r).clipNorm = v)],
      ['evalEvery', 'evalEvery', (r, v) => (train(r).evalEvery = v)],
      ['evalExamples', 'evalExamples', (r, v) => (train(r).evalExamples = v)],
      ['evalBatchSize', 'evalBatchSize', (r, v) => (train(r).evalBatchSize = v)],
      ['mixing.cap', 'mixingCap', (r, v) => (train(r).mixing = { cap: v })],
      ['mixing.temperature', 'mixingTemperature', (r, v) => (train(r).mixing = { temperature: v })],
      ['data.seed', 'seed', (r, v) => (r.data.seed = v)],
      ['maxSourceLength', 'maxSourceLength', (r, v) => (r.maxSourceLength = v)],
      ['maxTargetLength', 'maxTargetLength', (r, v) => (r.maxTargetLength = v)],
    ];
    for (const [label, key, set] of fields) {
      const range = JOB_RANGES[key];
      const step = 'integer' in range && range.integer ? 1 : Math.max(range.max * 1e-3, 1e-9);
      for (const ok of [range.min, range.max]) {
        const raw = base();
        set(raw, ok);
        // steps at its maximum needs warm-up below it; batch sizes at theirs are checked alone.
        assert.doesNotThrow(() => parseJobConfig(raw), `${label} = ${ok}`);
      }
      for (const bad of [range.min - step, range.max + step, Number.NaN]) {
        const e = refusal((r) => set(r, bad));
        assert.ok(e.message.includes(range.why), `${label} = ${bad}: ${e.message}`);
      }
    }
  });

  test('a --steps override is held to the same range', () => {
    assert.equal(checkStepsOverride(200), 200);
    assert.throws(
      () => checkStepsOverride(1e300),
      /^JobConfigError: command line: --steps: expected an integer from 1 to 10000000 \(optimizer steps/,
    );
    assert.throws(() => checkStepsOverride(0), /--steps: expected an integer from 1/);
  });

  test('warm-up stays below the step count', () => {
    assert.match(
      refusal((r) => {
        train(r).warmupSteps = 10;
      }).message,
      /warmupSteps: must be below steps \(10\)/,
    );
  });

  test('evalAtStart is a boolean, false unless set, inherited from the top-level train block', () => {
    const parsed = (edit: (r: Raw) => void) => {
      const raw = base();
      edit(raw);
      return parseJobConfig(raw).stages[0]!.train.evalAtStart;
    };
    assert.equal(
      parsed(() => {}),
      false,
    );
    assert.equal(
      parsed((r) => {
        train(r).evalAtStart = true;
      }),
      true,
    );
    assert.equal(
      parsed((r) => {
        r.train = { evalAtStart: true };
      }),
      true,
    );
    assert.match(
      refusal((r) => {
        train(r).evalAtStart = 'yes';
      }).message,
      /^job\.json: stages\[0\]\.train\.evalAtStart: expected true or false, got "yes"$/,
    );
  });
});
