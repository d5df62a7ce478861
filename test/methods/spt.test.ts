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
import { MissingTemplateError, type Spt, type SptConfig } from '../../src/methods/spt/index.js';
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
const TEMPLATES: Record<string, number[]> = { a: [30, 31, 32, 1], b: [70, 71, 1], c: [90, 91, 92, 93] };

function make(
  model: T5Model,
  raw: Record<string, unknown> = {},
  extra: Partial<{
    templates: Record<string, number[]>;
    inputs: Map<string, { shape: number[]; data: Float32Array }>;
  }> = {},
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
    templates: extra.templates ?? TEMPLATES,
    ...(extra.inputs ? { inputs: extra.inputs } : {}),
  }) as Spt;
}

function tensorOf(m: Spt, name: string): tf.Tensor {
  return m.params.find((p) => p.name === name)?.variable ?? m.frozen.get(name)!;
}

/** Plain-JS reference: z = mean template embedding, cos with every key / tau, top-k, softmax. */
function reference(model: T5Model, m: Spt, tasks: readonly string[], tau = 0.1) {
  const E = model.shared.arraySync() as number[][];
  const keys = tensorOf(m, 'keys').arraySync() as number[][];
  const norm = (v: number[]) => Math.hypot(...v);
  return tasks.map((t) => {
    const ids = TEMPLATES[t]!;
    const z = E[0]!.map((_, j) => ids.reduce((a, id) => a + E[id]![j]!, 0) / ids.length);
    const s = keys.map(
      (k, i) => [k.reduce((a, x, j) => a + x * z[j]!, 0) / (norm(k) * norm(z)) / tau, i] as const,
    );
    const top = [...s].sort((x, y) => y[0] - x[0]).slice(0, K);
    const e = top.map(([v]) => Math.exp(v - top[0]![0]));
    const sum = e.reduce((a, x) => a + x, 0);
    return { indices: top.map(([, i]) => i), weights: e.map((x) => x / sum) };
  });
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
      [c.memorySlots, c.memoryLength, c.topK, c.tau, c.promptLength, c.sharedPrompt, c.freezeMemory],
      [16, 20, 4, 0.1, 100, true, false],
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

  test('a task without a template is an error listing every such task', () => {
    assert.throws(
      () =>
        factory.create(factory.parseConfig({ memorySlots: M, topK: K }), {
          model,
          tasks: ['a', 'b', 'd'],
          seed: 1,
          templates: { b: [5] },
        }),
      (e: unknown) => e instanceof MissingTemplateError && e.tasks.join() === 'a,d' && /a, d/.test(e.message),
    );
    assert.throws(
      () => make(model, {}, { templates: { a: [], b: [3] } }),
      (e: unknown) => e instanceof MissingTemplateError && /empty template/.test(e.message),
    );
    assert.throws(
      () => make(model, {}, { templates: { a: [500], b: [3] } }),
      (e: unknown) => e instanceof MissingTemplateError && /outside the vocabulary/.test(e.message),
    );
  });

  test('describe() matches the created params; accounting on t5-base', () => {
    for (const raw of [{}, { sharedPrompt: false }, { freezeMemory: true }]) {
      const m = make(model, raw);
      const config = factory.parseConfig({
        memorySlots: M,
        memoryLength: L,
        topK: K,
        promptLength: N,
        ...raw,
      });
      const specs = factory.describe(config, { dModel: D, vocabSize: 128, tasks: TASKS });
      assert.deepEqual(
        m.params.map((p) => [p.name, p.variable.shape, p.group, p.task]),
        specs.filter((s) => s.trainable).map((s) => [s.name, s.shape, s.group, s.task]),
      );
      assert.deepEqual(
        [...m.frozen].map(([name, t]) => [name, t.shape]),
        specs.filter((s) => !s.trainable).map((s) => [s.name, s.shape]),
      );
      m.dispose();
    }
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

  test('forward: [P_mem ; P ; E] with P_mem = sum of retrieved slots weighted by w', () => {
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
    const ref = reference(model, m, batch.tasks);
    ref.forEach(({ indices, weights }, b) => {
      for (let t = 0; t < L; t++) {
        const expected = memory[0]![t]!.map((_, j) =>
          indices.reduce((a, i, r) => a + weights[r]! * memory[i]![t]![j]!, 0),
        );
        assert.ok(maxAbsDiff(emb[b]![t]!, expected) < 1e-4, `example ${b} memory row ${t}`);
      }
      for (let t = 0; t < N; t++) assert.equal(maxAbsDiff(emb[b]![L + t]!, prompt[t]!), 0);
    });
    tf.dispose([out.inputsEmbeds, out.attentionMask]);
    m.dispose();
  });

  test('retrieval is per example: a batch mixing tasks retrieves by each template', () => {
    const m = make(model);
    const got = perExample(m.retrieve(batch));
    const ref = reference(model, m, batch.tasks);
    got.forEach((g, b) => {
      assert.deepEqual(g.indices, ref[b]!.indices);
      assert.ok(maxAbsDiff(g.weights, ref[b]!.weights) < 1e-4, `weights ${g.weights} vs ${ref[b]!.weights}`);
    });
    // Tasks a, b, a, b: same task -> same retrieval; different templates -> different slots or weights.
    assert.deepEqual(got[0], got[2]);
    assert.deepEqual(got[1], got[3]);
    assert.ok(
      got[0]!.indices.join() !== got[1]!.indices.join() ||
        maxAbsDiff(got[0]!.weights, got[1]!.weights) > 1e-3,
      'tasks a and b retrieved the same memory',
    );
    m.dispose();
  });

  test('gradients match central differences for memory, keys and prompts', () => {
    for (const [raw, names] of [
      [{}, ['memory', 'keys', 'prompt']],
      [{ sharedPrompt: false }, ['keys', 'prompt.a', 'prompt.b']],
    ] as const) {
      const m = make(model, raw);
      const before = JSON.stringify(perExample(m.retrieve(batch)).map((x) => x.indices));
      for (const name of names) {
        for (const seed of [31, 32]) {
          const { analytic, numeric } = directional(m, model, batch, name, seed, 1e-3, () => {
            const now = JSON.stringify(perExample(m.retrieve(batch)).map((x) => x.indices));
            assert.equal(now, before, 'the retrieved slots changed within +-eps');
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

  test('keys and memory get gradient exactly on the retrieved slots', () => {
    const m = make(model);
    const retrieved = new Set(perExample(m.retrieve(batch)).flatMap((x) => x.indices));
    assert.ok(retrieved.size < M, 'every slot was retrieved: the test cannot see unretrieved ones');
    const grads = paramGrads(m, model, batch);
    for (const [name, width] of [
      ['keys', D],
      ['memory', L * D],
    ] as const) {
      const g = grads.get(name)!;
      for (let i = 0; i < M; i++) {
        const rowNorm = Math.hypot(...g.subarray(i * width, (i + 1) * width));
        if (retrieved.has(i)) assert.ok(rowNorm > 0, `${name} slot ${i} retrieved but no gradient`);
        else assert.equal(rowNorm, 0, `${name} slot ${i} not retrieved but gradient ${rowNorm}`);
      }
    }
    m.dispose();
  });

  test('zero-shot: an unseen task with a template uses the shared prompt; per-task prompts refuse it', () => {
    const unseen = makeBatch([
      [[5, 6, 7, 1], [3, 1], 'c'],
      [[8, 9, 1], [4, 1], 'a'],
    ]);
    const shared = make(model);
    assert.deepEqual(shared.templateTasks, ['a', 'b', 'c']);
    const sel = perExample(shared.retrieve(unseen));
    assert.deepEqual(sel[0]!.indices, reference(model, shared, ['c'])[0]!.indices);
    const out = shared.encoderInputs(model, unseen);
    assert.deepEqual(out.inputsEmbeds.shape, [2, L + N + 4, D]);
    tf.dispose([out.inputsEmbeds, out.attentionMask]);
    const perTask = make(model, { sharedPrompt: false });
    assert.throws(() => perTask.encoderInputs(model, unseen), /task 'c'/);
    const noTemplate = makeBatch([[[5, 1], [3, 1], 'zz']]);
    assert.throws(
      () => shared.encoderInputs(model, noTemplate),
      (e: unknown) => e instanceof MissingTemplateError && /zz/.test(String(e)),
    );
    for (const b of [unseen, noTemplate]) disposeBatch(b);
    shared.dispose();
    perTask.dispose();
  });

  test('touchedParams and freezeMemory', () => {
    const shared = make(model);
    assert.deepEqual(shared.touchedParams(['a']), ['memory', 'keys', 'prompt']);
    const perTask = make(model, { sharedPrompt: false });
    assert.deepEqual(perTask.touchedParams(['b', 'b']), ['memory', 'keys', 'prompt.b']);
    const onlyB = makeBatch([[[5, 6, 1], [3, 1], 'b']]);
    const grads = paramGrads(perTask, model, onlyB);
    assert.ok(grads.get('prompt.a')!.every((x) => x === 0));
    assert.ok(grads.get('prompt.b')!.some((x) => x !== 0));
    disposeBatch(onlyB);

    const frozen = make(model, { freezeMemory: true });
    assert.deepEqual(frozen.touchedParams(['a']), ['prompt']);
    assert.deepEqual([...frozen.frozen.keys()], ['memory', 'keys']);
    const memBefore = frozen.frozen.get('memory')!.dataSync().slice();
    shortRun(frozen, model, batch, 2, 0.05);
    assert.equal(maxAbsDiff(frozen.frozen.get('memory')!.dataSync(), memBefore), 0);
    for (const m of [shared, perTask, frozen]) m.dispose();
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

  for (const raw of [{}, { sharedPrompt: false }]) {
    test(`loss goes down over 30 Adam steps with stable tensor count: ${JSON.stringify(raw)}`, () => {
      const m = make(model, raw);
      assertLearnsWithoutLeak(m, model, batch);
      m.dispose();
    });
  }

  test('dispose frees everything the method owns', () => {
    const start = tf.memory().numTensors;
    const m = make(model);
    const out = m.encoderInputs(model, batch);
    tf.dispose([out.inputsEmbeds, out.attentionMask]);
    m.retrieve(batch);
    m.dispose();
    assert.equal(tf.memory().numTensors, start);
  });
});
