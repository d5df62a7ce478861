import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import {
  MethodConfigError,
  methodFactory,
  type PromptBatch,
  parameterReport,
} from '../../src/methods/index.js';
import type { Tpt, TptConfig } from '../../src/methods/tpt/index.js';
import type { T5Model } from '../../src/model/t5/index.js';
import { testBackend } from '../helpers/backend.js';
import {
  assertLearnsWithoutLeak,
  disposeBatch,
  makeBatch,
  maxAbsDiff,
  param,
  paramGrads,
  shortRun,
  tinyModel,
} from './tpt-spt-helpers.js';

const factory = methodFactory('tpt');
const TASKS = ['a', 'b'];
const N = 16;
const K = 4;
const NS = 3;

function make(
  model: T5Model,
  raw: Record<string, unknown>,
  inputs?: Map<string, { shape: number[]; data: Float32Array }>,
) {
  const config = factory.parseConfig({ bankSize: N, topK: K, taskPromptLength: NS, ...raw }) as TptConfig;
  // maxSourceLength = the test batch's length (ROWS): with maskPadding false the inputs are the batch's own rows.
  return factory.create(config, {
    model,
    tasks: TASKS,
    seed: 5,
    maxSourceLength: 6,
    ...(inputs ? { inputs } : {}),
  }) as Tpt;
}

/** Reference retrieval in plain JS: pooled query, raw dot scores, top-k, ascending. */
function referenceIndices(
  model: T5Model,
  batch: PromptBatch,
  bank: number[][],
  pool: 'max' | 'mean',
  maskPadding: boolean,
): number[][] {
  const E = model.shared.arraySync() as number[][];
  const ids = batch.inputIds.arraySync() as number[][];
  const mask = batch.attentionMask.arraySync() as number[][];
  const d = E[0]!.length;
  return ids.map((row, b) => {
    const used = row.filter((_, i) => !maskPadding || mask[b]![i] === 1).map((id) => E[id]!);
    const q = Array.from({ length: d }, (_, j) =>
      pool === 'max'
        ? Math.max(...used.map((e) => e[j]!))
        : used.reduce((a, e) => a + e[j]!, 0) / used.length,
    );
    const scores = bank.map((r, i) => [r.reduce((a, x, j) => a + x * q[j]!, 0), i] as const);
    return scores
      .sort((x, y) => y[0] - x[0])
      .slice(0, K)
      .map((s) => s[1])
      .sort((x, y) => x - y);
  });
}

function selection(method: Tpt, model: T5Model, batch: PromptBatch): number[][] {
  const { indices, k } = method.retrieve(model, batch);
  return Array.from({ length: indices.length / k }, (_, b) => [...indices.subarray(b * k, (b + 1) * k)]);
}

function bankOf(method: Tpt, name = 'bank'): tf.Tensor {
  return method.params.find((p) => p.name === name)?.variable ?? method.frozen.get(name)!;
}

describe('tpt', () => {
  let model: T5Model;
  let batch: PromptBatch;
  before(async () => {
    await selectBackend({ requested: testBackend() });
    model = tinyModel('v1.1');
    batch = makeBatch();
  });
  after(() => {
    disposeBatch(batch);
    model.dispose();
  });

  test('config: defaults, and errors that name the field', () => {
    const c = factory.parseConfig({ bankFrom: 'bank' }) as TptConfig;
    assert.equal(c.bankSize, 600);
    assert.equal(c.topK, 100);
    assert.equal(c.taskPromptLength, 100);
    assert.equal(c.stage, 'target');
    assert.equal(c.tuneBank, false);
    assert.equal(c.selector, 'maxPooling');
    assert.equal(c.maskPadding, true);
    const field = (raw: Record<string, unknown>) => {
      try {
        factory.parseConfig(raw);
      } catch (err) {
        assert.ok(err instanceof MethodConfigError, String(err));
        return err.field;
      }
      return undefined;
    };
    assert.equal(field({ bankSize: 10, topK: 11 }), 'topK');
    assert.equal(field({ selector: 'routing' }), 'selector');
    assert.equal(field({ stage: 'bank', tuneBank: true }), 'tuneBank');
    assert.equal(field({ stage: 'source' }), 'stage');
    assert.equal(field({ topk: 3 }), 'topk');
    assert.equal(field({ softTopKTemperature: 0 }), 'softTopKTemperature');
    assert.equal(field({ bankInit: 'random' }), 'bankInit');
    // Stage 2 without a bank is refused at creation, naming bankFrom; an explicit bankInit is the ablation.
    assert.throws(
      () => make(model, { stage: 'target' }),
      (e: unknown) => e instanceof MethodConfigError && e.field === 'bankFrom',
    );
    assert.throws(
      () => make(model, { stage: 'target', bankFrom: 'missing' }),
      (e: unknown) =>
        e instanceof MethodConfigError && e.field === 'bankFrom' && /available: none/.test(e.message),
    );
    const wrong = new Map([['b1', { shape: [N, 8], data: new Float32Array(N * 8) }]]);
    assert.throws(
      () => make(model, { stage: 'target', bankFrom: 'b1' }, wrong),
      (e: unknown) => e instanceof MethodConfigError && e.field === 'bankFrom' && /\[16, 8\]/.test(e.message),
    );
  });

  test('parameter accounting on t5-base: 76,800 per task with the shared bank, 537,600 with tuneBank', () => {
    const dims = {
      dModel: 768,
      vocabSize: 32128,
      tasks: ['mnli', 'qqp', 'qnli', 'sst2', 'stsb', 'mrpc', 'rte', 'cola'],
    };
    const shared = factory.parseConfig({ bankFrom: 'bank' });
    const r1 = parameterReport('tpt', factory.describe(shared, dims), dims);
    assert.equal(r1.perTask, 76_800);
    assert.equal(r1.frozen, 460_800);
    const tuned = factory.parseConfig({ bankFrom: 'bank', tuneBank: true });
    const r2 = parameterReport('tpt', factory.describe(tuned, dims), dims);
    assert.equal(r2.perTask, 537_600);
    assert.equal(r2.frozen, 0);
    const single = parameterReport('tpt', factory.describe(shared, { ...dims, tasks: ['rte'] }), {
      ...dims,
      tasks: ['rte'],
    });
    assert.equal(single.total, 76_800);
    // What `promptmesh describe --method tpt [--tune-bank]` counts.
    const quick = (tuneBank: boolean) =>
      factory.parseConfig(
        factory.quickConfig!({ tasks: dims.tasks, tuneBank, trainableLayerNorm: false, sources: 6 }),
      );
    assert.equal(parameterReport('tpt', factory.describe(quick(false), dims), dims).perTask, 76_800);
    assert.equal(parameterReport('tpt', factory.describe(quick(true), dims), dims).perTask, 537_600);
    const stage1 = factory.parseConfig({ stage: 'bank' });
    const r3 = parameterReport('tpt', factory.describe(stage1, dims), dims);
    assert.equal(r3.total, 460_800);
    assert.deepEqual(
      r3.tensors.map((t) => [t.name, t.group, t.trainable]),
      [['bank', 'bank', true]],
    );
  });

  test('bank init: frozen embedding rows of distinct ids (clamped range on a tiny vocabulary)', () => {
    const m = make(model, { stage: 'bank' });
    const bank = bankOf(m).arraySync() as number[][];
    const E = model.shared.arraySync() as number[][];
    // Vocabulary 128, N 16: [100, 128) holds 16 distinct ids.
    const ids = bank.map((row) => E.findIndex((e) => maxAbsDiff(e, row) === 0));
    assert.ok(
      ids.every((id) => id >= 100 && id < 128),
      `ids ${ids}`,
    );
    assert.equal(new Set(ids).size, N);
    m.dispose();
  });

  test('forward shapes and mask: [P_ret ; P_task ; E] in stage target, [P_ret ; E] in stage bank', () => {
    const L = batch.inputIds.shape[1];
    for (const [raw, P] of [
      [{ bankInit: 'vocab' }, K + NS],
      [{ stage: 'bank' }, K],
    ] as const) {
      const m = make(model, raw);
      const out = m.encoderInputs(model, batch);
      assert.deepEqual(out.inputsEmbeds.shape, [4, P + L, 16]);
      assert.deepEqual(out.attentionMask.shape, [4, P + L]);
      const mask = out.attentionMask.arraySync();
      const given = batch.attentionMask.arraySync();
      mask.forEach((row, b) => {
        assert.deepEqual(row, [...new Array(P).fill(1), ...given[b]!]);
      });
      tf.dispose([out.inputsEmbeds, out.attentionMask]);
      m.dispose();
    }
  });

  test('retrieval: k distinct rows in bank order, equal to a plain reference, placed before the task prompt', () => {
    const m = make(model, { bankInit: 'vocab' });
    const bank = bankOf(m).arraySync() as number[][];
    const got = selection(m, model, batch);
    assert.deepEqual(got, referenceIndices(model, batch, bank, 'max', true));
    for (const row of got) {
      assert.equal(new Set(row).size, K);
      assert.deepEqual(
        row,
        [...row].sort((x, y) => x - y),
      );
    }
    // Different inputs retrieve different rows (otherwise retrieval would be a fixed prompt).
    assert.ok(new Set(got.map((r) => r.join(','))).size > 1);
    const out = m.encoderInputs(model, batch);
    const emb = out.inputsEmbeds.arraySync();
    got.forEach((row, b) => {
      row.forEach((i, j) => {
        assert.equal(maxAbsDiff(emb[b]![j]!, bank[i]!), 0);
      });
      const prompt = param(m, `prompt.${batch.tasks[b]}`).variable.arraySync() as number[][];
      for (let j = 0; j < NS; j++) assert.equal(maxAbsDiff(emb[b]![K + j]!, prompt[j]!), 0);
    });
    tf.dispose([out.inputsEmbeds, out.attentionMask]);
    m.dispose();
  });

  test('maskPadding: false pools over pads too (the released behaviour)', () => {
    const masked = make(model, { bankInit: 'vocab' });
    const unmasked = make(model, { bankInit: 'vocab', maskPadding: false });
    const bank = bankOf(masked).arraySync() as number[][];
    const a = selection(masked, model, batch);
    const b = selection(unmasked, model, batch);
    assert.deepEqual(b, referenceIndices(model, batch, bank, 'max', false));
    assert.notDeepEqual(a, b, 'pads changed no selection: the test batch cannot tell the two apart');
    masked.dispose();
    unmasked.dispose();
  });

  test('selectors: avgPooling pools by the mean; softTopK weights the max-pooling rows by k * softmax(z)', () => {
    const hard = make(model, { bankInit: 'vocab' });
    const avg = make(model, { bankInit: 'vocab', selector: 'avgPooling' });
    const soft = make(model, { bankInit: 'vocab', selector: 'softTopK' });
    const bank = bankOf(hard).arraySync() as number[][];
    const hardSel = selection(hard, model, batch);
    const avgSel = selection(avg, model, batch);
    assert.deepEqual(avgSel, referenceIndices(model, batch, bank, 'mean', true));
    assert.notDeepEqual(avgSel, hardSel);
    assert.deepEqual(selection(soft, model, batch), hardSel);

    // softTopK rows = k * w_j * B[idx_j], w = softmax of the standardised scores q . B[idx_j].
    const E = model.shared.arraySync() as number[][];
    const ids = batch.inputIds.arraySync() as number[][];
    const mask = batch.attentionMask.arraySync() as number[][];
    const out = soft.encoderInputs(model, batch);
    const emb = out.inputsEmbeds.arraySync();
    hardSel.forEach((row, b) => {
      const used = ids[b]!.filter((_, i) => mask[b]![i] === 1).map((id) => E[id]!);
      const q = E[0]!.map((_, j) => Math.max(...used.map((e) => e[j]!)));
      const s = row.map((i) => bank[i]!.reduce((a, x, j) => a + x * q[j]!, 0));
      const mean = s.reduce((a, x) => a + x, 0) / K;
      const sd = Math.sqrt(s.reduce((a, x) => a + (x - mean) ** 2, 0) / K + 1e-6);
      const e = s.map((x) => Math.exp((x - mean) / sd));
      const w = e.map((x) => x / e.reduce((a, y) => a + y, 0));
      row.forEach((i, j) => {
        const expected = bank[i]!.map((x) => K * w[j]! * x);
        assert.ok(maxAbsDiff(emb[b]![j]!, expected) < 1e-4, `example ${b} row ${j}`);
      });
      assert.ok(Math.max(...w) - Math.min(...w) > 0.05, 'weights should not be uniform');
    });
    tf.dispose([out.inputsEmbeds, out.attentionMask]);
    for (const m of [hard, avg, soft]) m.dispose();
  });

  test('bank gradient is non-zero exactly on the retrieved rows', () => {
    const m = make(model, { stage: 'bank' });
    const chosen = new Set(selection(m, model, batch).flat());
    assert.ok(chosen.size < N, 'every row was retrieved: the test cannot see unchosen rows');
    const g = paramGrads(m, model, batch).get('bank')!;
    for (let i = 0; i < N; i++) {
      const rowNorm = Math.hypot(...g.subarray(i * 16, (i + 1) * 16));
      if (chosen.has(i)) assert.ok(rowNorm > 0, `row ${i} was retrieved but got no gradient`);
      else assert.equal(rowNorm, 0, `row ${i} was not retrieved but got gradient ${rowNorm}`);
    }
    m.dispose();
  });

  test('bankFrom: stage 2 starts from the stage-1 bank and keeps it frozen', () => {
    const s1 = make(model, { stage: 'bank' });
    shortRun(s1, model, batch, 3, 0.05);
    const trained = bankOf(s1).dataSync() as Float32Array;
    const inputs = new Map([['tpt.bank', { shape: [N, 16], data: Float32Array.from(trained) }]]);
    const s2 = make(model, { bankFrom: 'tpt.bank' }, inputs);
    assert.equal(maxAbsDiff(bankOf(s2).dataSync(), trained), 0);
    assert.ok(!s2.params.some((p) => p.group === 'bank'));
    shortRun(s2, model, batch, 3, 0.05);
    assert.equal(maxAbsDiff(bankOf(s2).dataSync(), trained), 0, 'the shared bank moved in stage 2');
    s1.dispose();
    s2.dispose();
  });

  for (const raw of [
    { stage: 'bank' },
    { bankInit: 'vocab' },
    { bankInit: 'vocab', tuneBank: true, selector: 'softTopK' },
  ]) {
    test(`loss goes down over 30 Adam steps with stable tensor count: ${JSON.stringify(raw)}`, () => {
      const m = make(model, raw);
      assertLearnsWithoutLeak(m, model, batch);
      m.dispose();
    });
  }
});
