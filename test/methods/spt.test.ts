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
import type { Spt, SptConfig } from '../../src/methods/spt/index.js';
import type { T5Model } from '../../src/model/t5/index.js';
import { testBackend } from '../helpers/backend.js';
import {
  assertLearnsWithoutLeak,
  directional,
  disposeBatch,
  makeBatch,
  maxAbsDiff,
  param,
  paramGrads,
  ROWS,
  shortRun,
  tinyModel,
} from './tpt-spt-helpers.js';

const factory = methodFactory('spt');
const TASKS = ['a', 'b'];
const M = 6;
const L = 2;
const K = 2;
const N = 3;
const D = 16;

function make(
  model: T5Model,
  raw: Record<string, unknown> = {},
  extra: Partial<{ inputs: Map<string, { shape: number[]; data: Float32Array }> }> = {},
) {
  const config = factory.parseConfig({
    memorySlots: M,
    memoryLength: L,
    topK: K,
    promptLength: N,
    ...raw,
  }) as SptConfig;
  return factory.create(config, {
    model,
    tasks: TASKS,
    seed: 9,
    ...(extra.inputs ? { inputs: extra.inputs } : {}),
  }) as Spt;
}

function tensorOf(m: Spt, name: string): tf.Tensor {
  return m.params.find((p) => p.name === name)?.variable ?? m.frozen.get(name)!;
}

/**
 * Plain-JS reference: z = mean of the frozen embedding rows of each example's real tokens (its discrete prompt),
 * cos with every key / tau, top-k, softmax over the k.
 */
function reference(model: T5Model, m: Spt, b: PromptBatch, tau = 0.1) {
  const E = model.shared.arraySync() as number[][];
  const keys = tensorOf(m, 'keys').arraySync() as number[][];
  const ids = b.inputIds.arraySync() as number[][];
  const mask = b.attentionMask.arraySync() as number[][];
  const norm = (v: number[]) => Math.hypot(...v);
  return ids.map((row, r) => {
    const real = row.filter((_, t) => mask[r]![t]! > 0);
    const z = E[0]!.map((_, j) => real.reduce((a, id) => a + E[id]![j]!, 0) / real.length);
    const s = keys.map(
      (k, i) => [k.reduce((a, x, j) => a + x * z[j]!, 0) / (norm(k) * norm(z)) / tau, i] as const,
    );
    const top = [...s].sort((x, y) => y[0] - x[0]).slice(0, K);
    const e = top.map(([v]) => Math.exp(v - top[0]![0]));
    const sum = e.reduce((a, x) => a + x, 0);
    return { indices: top.map(([, i]) => i), weights: e.map((x) => x / sum) };
  });
}

/** Rows [0, L) of each example's encoder input: P_mem. */
function memoryRows(m: Spt, model: T5Model, b: PromptBatch): number[][][] {
  const out = m.encoderInputs(model, b);
  const rows = (out.inputsEmbeds.arraySync() as number[][][]).map((x) => x.slice(0, L));
  tf.dispose([out.inputsEmbeds, out.attentionMask]);
  return rows;
}

function perExample(sel: { indices: Int32Array; weights: Float32Array; k: number }) {
  return Array.from({ length: sel.indices.length / sel.k }, (_, b) => ({
    indices: [...sel.indices.subarray(b * sel.k, (b + 1) * sel.k)],
    weights: [...sel.weights.subarray(b * sel.k, (b + 1) * sel.k)],
  }));
}

describe('spt', () => {
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
    const c = factory.parseConfig({}) as SptConfig;
    assert.deepEqual(
      [
        c.memorySlots,
        c.memoryLength,
        c.topK,
        c.tau,
        c.promptLength,
        c.sharedPrompt,
        c.freezeMemory,
        c.retrievalGradient,
      ],
      [16, 20, 4, 0.1, 100, true, false, 'dense'],
    );
    const field = (raw: Record<string, unknown>) => {
      try {
        factory.parseConfig(raw);
      } catch (err) {
        assert.ok(err instanceof MethodConfigError, String(err));
        return err.field;
      }
      return undefined;
    };
    assert.equal(field({ memorySlots: 3, topK: 4 }), 'topK');
    assert.equal(field({ tau: 0 }), 'tau');
    assert.equal(field({ keyInit: 'zeros' }), 'keyInit');
    assert.equal(field({ memoryLenght: 5 }), 'memoryLenght');
    assert.equal(field({ sharedPrompt: 'yes' }), 'sharedPrompt');
    assert.equal(field({ retrievalGradient: 'soft' }), 'retrievalGradient');
    const wrong = new Map([['mem', { shape: [M, L + 1, D], data: new Float32Array(M * (L + 1) * D) }]]);
    assert.throws(
      () => make(model, { memoryFrom: 'mem' }, { inputs: wrong }),
      (e: unknown) =>
        e instanceof MethodConfigError && e.field === 'memoryFrom' && /\[6, 3, 16\]/.test(e.message),
    );
    assert.throws(
      () => make(model, { keysFrom: 'k' }),
      (e: unknown) => e instanceof MethodConfigError && e.field === 'keysFrom',
    );
  });

  test('accounting on t5-base', () => {
    const dims = {
      dModel: 768,
      vocabSize: 32128,
      tasks: ['mnli', 'qqp', 'qnli', 'sst2', 'stsb', 'mrpc', 'rte', 'cola'],
    };
    const r = parameterReport('spt', factory.describe(factory.parseConfig({}), dims), dims);
    // memory 16 x 20 x 768 + keys 16 x 768 + one shared prompt 100 x 768.
    assert.equal(r.total, 245_760 + 12_288 + 76_800);
    assert.deepEqual(
      r.tensors.map((t) => [t.name, t.group]),
      [
        ['memory', 'memory'],
        ['keys', 'memory'],
        ['prompt', 'prompt'],
      ],
    );
    const perTask = parameterReport(
      'spt',
      factory.describe(factory.parseConfig({ sharedPrompt: false }), dims),
      dims,
    );
    assert.equal(perTask.perTask, (245_760 + 12_288) / 8 + 76_800);
  });

  test('forward: [P_mem ; P ; E] with P_mem = sum of retrieved slots weighted by w, in both gradient modes', () => {
    const m = make(model);
    const out = m.encoderInputs(model, batch);
    const Lx = batch.inputIds.shape[1];
    assert.deepEqual(out.inputsEmbeds.shape, [4, L + N + Lx, D]);
    const mask = out.attentionMask.arraySync();
    const given = batch.attentionMask.arraySync();
    for (let b = 0; b < 4; b++) assert.deepEqual(mask[b], [...new Array(L + N).fill(1), ...given[b]!]);
    const emb = out.inputsEmbeds.arraySync();
    const memory = tensorOf(m, 'memory').arraySync() as number[][][];
    const prompt = tensorOf(m, 'prompt').arraySync() as number[][];
    const ref = reference(model, m, batch);
    ref.forEach(({ indices, weights }, b) => {
      for (let t = 0; t < L; t++) {
        const expected = memory[0]![t]!.map((_, j) =>
          indices.reduce((a, i, r) => a + weights[r]! * memory[i]![t]![j]!, 0),
        );
        assert.ok(maxAbsDiff(emb[b]![t]!, expected) < 1e-4, `example ${b} memory row ${t}`);
      }
      for (let t = 0; t < N; t++) assert.equal(maxAbsDiff(emb[b]![L + t]!, prompt[t]!), 0);
    });
    // The straight-through backward of 'dense' leaves the forward bit for bit the top-k mixture.
    const exact = make(model, { retrievalGradient: 'topk' });
    const out2 = exact.encoderInputs(model, batch);
    assert.equal(maxAbsDiff(out2.inputsEmbeds.dataSync(), out.inputsEmbeds.dataSync()), 0);
    tf.dispose([out.inputsEmbeds, out.attentionMask, out2.inputsEmbeds, out2.attentionMask]);
    m.dispose();
    exact.dispose();
  });

  test("retrieval is per example, by the example's discrete prompt, not by its task", () => {
    const m = make(model);
    const got = perExample(m.retrieve(model, batch));
    const ref = reference(model, m, batch);
    got.forEach((g, b) => {
      assert.deepEqual(g.indices, ref[b]!.indices);
      assert.ok(maxAbsDiff(g.weights, ref[b]!.weights) < 1e-4, `weights ${g.weights} vs ${ref[b]!.weights}`);
    });
    // ROWS 0 and 2 are both task 'a' with different inputs: they retrieve different slots.
    assert.equal(batch.tasks[0], batch.tasks[2]);
    assert.notDeepEqual(got[0]!.indices, got[2]!.indices, 'two examples of task a retrieved the same slots');
    // The same input under two task names retrieves the same memory: the task name plays no part.
    const renamed = makeBatch([
      [[5, 6, 7, 8, 9, 1], [3, 1], 'a'],
      [[5, 6, 7, 8, 9, 1], [3, 1], 'b'],
    ]);
    const [x, y] = perExample(m.retrieve(model, renamed));
    assert.deepEqual(x, y);
    assert.deepEqual(x!.indices, got[0]!.indices);
    disposeBatch(renamed);
    m.dispose();
  });

  test('retrieval and P_mem are the same for an example alone as in a padded batch', () => {
    const m = make(model);
    const together = perExample(m.retrieve(model, batch));
    const rowsTogether = memoryRows(m, model, batch);
    ROWS.forEach((row, b) => {
      // Alone: no padding at all; beside a longer neighbour: padded further.
      for (const rows of [
        [row],
        [row, [[3, 4, 5, 6, 7, 8, 9, 10, 11, 1], [2, 1], 'b'] as (typeof ROWS)[0]],
      ]) {
        const small = makeBatch(rows);
        assert.deepEqual(perExample(m.retrieve(model, small))[0], together[b], `example ${b}`);
        assert.deepEqual(memoryRows(m, model, small)[0], rowsTogether[b], `example ${b}: P_mem`);
        disposeBatch(small);
      }
    });
    m.dispose();
  });

  test('k = m: the exact top-k gradient matches central differences (the conformance suite checks k < m)', () => {
    for (const [raw, names] of [
      // k = m: the top-k mixture is the dense softmax mixture, whose gradient 'dense' back-propagates.
      [{ retrievalGradient: 'topk', topK: M }, ['memory', 'keys']],
    ] as const) {
      const m = make(model, raw);
      const before = JSON.stringify(perExample(m.retrieve(model, batch)).map((x) => [...x.indices].sort()));
      for (const name of names) {
        for (const seed of [31, 32]) {
          const { analytic, numeric } = directional(m, model, batch, name, seed, 1e-3, () => {
            const now = JSON.stringify(
              perExample(m.retrieve(model, batch)).map((x) => [...x.indices].sort()),
            );
            assert.equal(now, before, 'the retrieved slot sets changed within +-eps');
          });
          const tol = 2e-2 * Math.max(1, Math.abs(analytic));
          assert.ok(Math.abs(analytic) > 1e-4, `${name}: zero gradient`);
          assert.ok(
            Math.abs(analytic - numeric) < tol,
            `${JSON.stringify(raw)} ${name}: ${analytic} vs ${numeric}`,
          );
        }
      }
      m.dispose();
    }
  });

  test("'dense' back-propagates the softmax mixture over all m slots (straight-through)", () => {
    // A readout linear in P_mem has the same upstream gradient whatever the forward value, so the
    // straight-through gradient at k < m must equal the exact gradient at k = m (checked above by differences).
    const c = tf.randomNormal([ROWS.length, L, D], 0, 1, 'float32', 5);
    const readout = (m: Spt) => {
      const vars = m.params.map((p) => p.variable);
      const { value, grads } = tf.variableGrads(
        () =>
          tf.tidy(() => {
            const out = m.encoderInputs(model, batch);
            return tf.sum(tf.mul(tf.slice(out.inputsEmbeds, [0, 0, 0], [-1, L, -1]), c));
          }),
        vars,
      );
      const g = new Map(m.params.map((p) => [p.name, grads[p.variable.name]!.dataSync().slice()]));
      tf.dispose([value, ...Object.values(grads)]);
      return g;
    };
    const dense = make(model);
    const full = make(model, { retrievalGradient: 'topk', topK: M });
    const gd = readout(dense);
    const gf = readout(full);
    for (const name of ['memory', 'keys']) {
      const scale = Math.max(...gf.get(name)!.map(Math.abs));
      assert.ok(scale > 1e-3, `${name}: no gradient`);
      assert.ok(maxAbsDiff(gd.get(name)!, gf.get(name)!) < 1e-4 * scale, `${name}: dense vs k = m`);
    }
    tf.dispose(c);
    dense.dispose();
    full.dispose();
  });

  test("unretrieved slots and keys: 'topk' gives them exactly zero and they never move; 'dense' trains them", () => {
    for (const mode of ['topk', 'dense'] as const) {
      const m = make(model, { retrievalGradient: mode });
      const retrieved = new Set(perExample(m.retrieve(model, batch)).flatMap((x) => x.indices));
      assert.ok(retrieved.size < M, 'every slot was retrieved: the test cannot see unretrieved ones');
      const grads = paramGrads(m, model, batch);
      for (const [name, width] of [
        ['keys', D],
        ['memory', L * D],
      ] as const) {
        const g = grads.get(name)!;
        for (let i = 0; i < M; i++) {
          const rowNorm = Math.hypot(...g.subarray(i * width, (i + 1) * width));
          if (retrieved.has(i) || mode === 'dense')
            assert.ok(rowNorm > 0, `${mode}: ${name} slot ${i} no gradient`);
          else assert.equal(rowNorm, 0, `${name} slot ${i} not retrieved but gradient ${rowNorm}`);
        }
      }
      // A few Adam steps on the same batch: an unretrieved slot stays put under 'topk' and moves under 'dense'.
      const unpicked = [...Array(M).keys()].find((i) => !retrieved.has(i))!;
      const row = (name: string, width: number) =>
        param(m, name)
          .variable.dataSync()
          .slice(unpicked * width, (unpicked + 1) * width);
      const before = [row('memory', L * D), row('keys', D)];
      shortRun(m, model, batch, 2, 0.01);
      const after = [row('memory', L * D), row('keys', D)];
      const still = perExample(m.retrieve(model, batch)).every((x) => !x.indices.includes(unpicked));
      for (let j = 0; j < 2; j++) {
        const moved = maxAbsDiff(after[j]!, before[j]!);
        if (mode === 'dense') assert.ok(moved > 0, `dense: slot ${unpicked} did not move`);
        else if (still) assert.equal(moved, 0, `topk: unretrieved slot ${unpicked} moved by ${moved}`);
      }
      m.dispose();
    }
  });

  test('zero-shot: a task the method was not created with retrieves memory and uses the shared prompt', () => {
    const unseen = makeBatch([
      [[5, 6, 7, 1], [3, 1], 'c'],
      [[8, 9, 1], [4, 1], 'a'],
    ]);
    const shared = make(model);
    const sel = perExample(shared.retrieve(model, unseen));
    assert.deepEqual(sel[0]!.indices, reference(model, shared, unseen)[0]!.indices);
    const out = shared.encoderInputs(model, unseen);
    assert.deepEqual(out.inputsEmbeds.shape, [2, L + N + 4, D]);
    tf.dispose([out.inputsEmbeds, out.attentionMask]);
    assert.equal(factory.servesUnseenTasks?.(factory.parseConfig({})), true);
    assert.equal(factory.servesUnseenTasks?.(factory.parseConfig({ sharedPrompt: false })), false);
    const perTask = make(model, { sharedPrompt: false });
    assert.throws(() => perTask.encoderInputs(model, unseen), /task 'c'/);
    disposeBatch(unseen);
    shared.dispose();
    perTask.dispose();
  });

  test('freezeMemory: memory and keys are frozen tensors that training does not move', () => {
    const frozen = make(model, { freezeMemory: true });
    assert.deepEqual(frozen.touchedParams(['a']), ['prompt']);
    assert.deepEqual([...frozen.frozen.keys()], ['memory', 'keys']);
    const memBefore = frozen.frozen.get('memory')!.dataSync().slice();
    shortRun(frozen, model, batch, 2, 0.05);
    assert.equal(maxAbsDiff(frozen.frozen.get('memory')!.dataSync(), memBefore), 0);
    frozen.dispose();
  });

  test('memoryFrom / keysFrom / promptFrom continue from trained tensors', () => {
    const first = make(model);
    shortRun(first, model, batch, 3, 0.05);
    const inputs = new Map(
      ['memory', 'keys', 'prompt'].map((n) => {
        const v = param(first, n).variable;
        return [`spt.${n}`, { shape: v.shape, data: Float32Array.from(v.dataSync()) }] as const;
      }),
    );
    const next = make(
      model,
      { memoryFrom: 'spt.memory', keysFrom: 'spt.keys', promptFrom: 'spt.prompt', sharedPrompt: false },
      { inputs },
    );
    assert.equal(maxAbsDiff(tensorOf(next, 'memory').dataSync(), inputs.get('spt.memory')!.data), 0);
    assert.equal(maxAbsDiff(tensorOf(next, 'keys').dataSync(), inputs.get('spt.keys')!.data), 0);
    for (const t of TASKS)
      assert.equal(maxAbsDiff(tensorOf(next, `prompt.${t}`).dataSync(), inputs.get('spt.prompt')!.data), 0);
    first.dispose();
    next.dispose();
  });

  for (const raw of [{}, { sharedPrompt: false }, { retrievalGradient: 'topk' }]) {
    test(`loss goes down over 30 Adam steps with stable tensor count: ${JSON.stringify(raw)}`, () => {
      const m = make(model, raw);
      assertLearnsWithoutLeak(m, model, batch);
      m.dispose();
    });
  }
});
