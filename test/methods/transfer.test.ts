import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { DirectoryStore, PromptBank } from '../../src/bank/index.js';
import { JobConfigError, parseJobConfig } from '../../src/config/job-config.js';
import { mulberry32 } from '../../src/data/rng.js';
import {
  MethodConfigError,
  methodFactory,
  type PromptMethod,
  parameterReport,
} from '../../src/methods/index.js';
import { makeTinyT5 } from '../../src/model/checkpoint/index.js';
import { T5Model } from '../../src/model/t5/index.js';
import { testBackend } from '../helpers/backend.js';

type Tensors = Map<string, { shape: number[]; data: Float32Array }>;

const N = 3; // prompt length
const MODULE = ['attention.down', 'attention.up', 'attention.ln.gamma', 'attention.ln.beta'];

function create(
  model: T5Model,
  method: string,
  raw: Record<string, unknown>,
  tasks: string[],
  inputs: Tensors,
) {
  const factory = methodFactory(method);
  return factory.create(factory.parseConfig(raw), { model, tasks, seed: 5, inputs });
}

/** Every tensor of a method, trainable and frozen, as a stage hands them on. */
function tensorsOf(m: PromptMethod): Tensors {
  const out: Tensors = new Map();
  for (const p of m.params)
    out.set(p.name, { shape: p.variable.shape, data: p.variable.dataSync().slice() as Float32Array });
  for (const [k, t] of m.frozen) out.set(k, { shape: t.shape, data: t.dataSync().slice() as Float32Array });
  return out;
}

/** Overwrites every trainable tensor with distinct values, as training would: loading must copy these, not an init. */
function scramble(m: PromptMethod, seed: number): void {
  const rng = mulberry32(seed);
  for (const p of m.params) {
    const size = p.variable.size;
    const value = Float32Array.from({ length: size }, () => rng() * 4 - 2);
    tf.tidy(() => p.variable.assign(tf.tensor(value, p.variable.shape)));
  }
}

/** Commits tensors as a bank version and reads them back: the path a later stage's inputs take. */
async function throughBank(root: string, method: string, tensors: Tensors): Promise<Tensors> {
  const bank = new PromptBank(new DirectoryStore(root), { onWarning: () => {} });
  try {
    const v = await bank.commit({ job: 'stage1', parent: null, step: 1, method, config: {}, tensors });
    return await bank.load(v.id);
  } finally {
    await bank.close();
  }
}

function tensorValue(m: PromptMethod, name: string): Float32Array {
  const t = m.params.find((p) => p.name === name)?.variable ?? m.frozen.get(name);
  assert.ok(t, `no tensor ${name}`);
  return t.dataSync() as Float32Array;
}

const throwsOn = (field: string, pattern: RegExp) => (e: unknown) =>
  e instanceof MethodConfigError && e.field === field && pattern.test(e.message);

describe('transfer between stages (ATTEMPT-m load_attention, TPT prompt_path)', () => {
  let model: T5Model;
  let d: number;
  let tmp: string;
  let sources: Tensors;

  before(async () => {
    await selectBackend({ requested: testBackend() });
    const { config, tensors } = makeTinyT5({ variant: 'v1.1', seed: 7, vocabSize: 64 });
    model = T5Model.fromWeights(config, tensors);
    d = config.dModel;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-'));
    const rng = mulberry32(11);
    sources = new Map(
      ['prompt.mnli', 'prompt.sst2'].map((name) => [
        name,
        { shape: [N, d], data: Float32Array.from({ length: N * d }, () => rng() * 2 - 1) },
      ]),
    );
  });
  after(() => {
    model.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const attemptRaw = (extra: Record<string, unknown> = {}) => ({
    promptLength: N,
    attentionDim: 4,
    sources: ['prompt.mnli', 'prompt.sst2'],
    multiTask: true,
    ...extra,
  });

  test('ATTEMPT attentionFrom copies W_down, W_up and the LayerNorm of an earlier stage bank version exactly', async () => {
    // The earlier stage leaves its LayerNorm frozen (the released training) but it is loaded all the same.
    let handedLast: Tensors | undefined;
    for (const earlierLn of [true, false]) {
      const first = create(
        model,
        'attempt',
        attemptRaw({ trainableLayerNorm: earlierLn }),
        ['mnli', 'qqp'],
        sources,
      );
      scramble(first, earlierLn ? 1 : 2);
      // A frozen LayerNorm stays 1 / 0; give it trained-looking values so a non-load cannot pass.
      const handed = tensorsOf(first);
      if (!earlierLn) {
        handed.set('attention.ln.gamma', {
          shape: [d],
          data: Float32Array.from({ length: d }, (_, i) => 1 + i / 8),
        });
        handed.set('attention.ln.beta', {
          shape: [d],
          data: Float32Array.from({ length: d }, (_, i) => -i / 16),
        });
      }
      first.dispose();
      handedLast = handed;
      // Later stages see every earlier stage's tensors (the source prompts too), as runJob hands them on.
      const inputs = await throughBank(
        path.join(tmp, `ln-${earlierLn}`),
        'attempt',
        new Map([...sources, ...handed]),
      );
      const second = create(
        model,
        'attempt',
        attemptRaw({ attentionFrom: 'attention' }),
        ['rte', 'mrpc'],
        inputs,
      );
      try {
        for (const name of MODULE) assert.deepEqual(tensorValue(second, name), handed.get(name)!.data, name);
        // Only the module is transferred: the new tasks' target prompts start from the first source, as always.
        assert.deepEqual(tensorValue(second, 'target.rte'), sources.get('prompt.mnli')!.data);
        // Loading does not change what trains.
        assert.deepEqual(
          second.params.map((p) => p.name),
          ['target.rte', 'target.mrpc', ...MODULE],
        );
      } finally {
        second.dispose();
      }
    }
    // Without attentionFrom the same inputs are not read: W_down is a fresh N(0, 0.01^2) draw.
    const inputs = await throughBank(
      path.join(tmp, 'fresh'),
      'attempt',
      new Map([...sources, ...handedLast!]),
    );
    const fresh = create(model, 'attempt', attemptRaw(), ['rte'], inputs);
    try {
      assert.notDeepEqual(tensorValue(fresh, 'attention.down'), handedLast!.get('attention.down')!.data);
      assert.ok(Math.max(...tensorValue(fresh, 'attention.down').map(Math.abs)) < 0.1);
    } finally {
      fresh.dispose();
    }
  });

  test('ATTEMPT attentionFrom: a missing tensor is named; a shape mismatch names both shapes', () => {
    const first = create(model, 'attempt', attemptRaw(), ['mnli'], sources);
    const handed = tensorsOf(first);
    first.dispose();
    const inputs: Tensors = new Map([...sources, ...handed]);
    assert.throws(
      () =>
        create(
          model,
          'attempt',
          attemptRaw({ attentionDim: 5, attentionFrom: 'attention' }),
          ['rte'],
          inputs,
        ),
      throwsOn(
        'attentionFrom',
        new RegExp(`'attention.down' has shape \\[${d}, 4\\] but 'attention.down' is \\[${d}, 5\\]`),
      ),
    );
    const noLn = new Map(inputs);
    noLn.delete('attention.ln.beta');
    assert.throws(
      () => create(model, 'attempt', attemptRaw({ attentionFrom: 'attention' }), ['rte'], noLn),
      throwsOn('attentionFrom', /no input tensor 'attention\.ln\.beta'/),
    );
    assert.throws(
      () => create(model, 'attempt', attemptRaw({ attentionFrom: 'pretrain' }), ['rte'], inputs),
      throwsOn('attentionFrom', /no input tensor 'pretrain\.down'/),
    );
    for (const [raw, pattern] of [
      [{ attentionFrom: '' }, /is empty/],
      [{ attentionFrom: 3 }, /expected a string/],
      [{ attn: 'dot', attentionFrom: 'attention' }, /attn 'dot' has no attention module/],
      [{ attn: 'constant', attentionFrom: 'attention' }, /attn 'constant' has no attention module/],
    ] as const) {
      assert.throws(
        () => methodFactory('attempt').parseConfig(attemptRaw(raw)),
        throwsOn('attentionFrom', pattern),
      );
    }
  });

  test('TPT promptFrom starts the named tasks from a trained prompt of an earlier bank version, exactly', async () => {
    const pt = create(
      model,
      'prompt-tuning',
      { promptLength: N, perTask: true },
      ['mnli', 'qnli'],
      new Map(),
    );
    scramble(pt, 3);
    const handed = tensorsOf(pt);
    pt.dispose();
    const inputs = await throughBank(path.join(tmp, 'pt'), 'prompt-tuning', handed);
    const mnli = handed.get('prompt.mnli')!.data;
    const tptRaw = (extra: Record<string, unknown>) => ({
      bankSize: 8,
      topK: 2,
      taskPromptLength: N,
      bankInit: 'uniform',
      ...extra,
    });
    // The released scripts: MRPC and RTE start from MNLI's prompt, the others from the "frequent" init.
    const m = create(
      model,
      'tpt',
      tptRaw({ promptFrom: { mrpc: 'prompt.mnli', rte: 'prompt.mnli' } }),
      ['mrpc', 'rte', 'cola'],
      inputs,
    );
    try {
      assert.deepEqual(tensorValue(m, 'prompt.mrpc'), mnli);
      assert.deepEqual(tensorValue(m, 'prompt.rte'), mnli);
      assert.notDeepEqual(tensorValue(m, 'prompt.cola'), mnli);
      // Each task owns its copy: training one must not move the other.
      const rte = m.params.find((p) => p.name === 'prompt.rte')!.variable;
      tf.tidy(() => rte.assign(tf.zerosLike(rte)));
      assert.deepEqual(tensorValue(m, 'prompt.mrpc'), mnli);
      assert.deepEqual(
        m.params.map((p) => p.name),
        ['prompt.mrpc', 'prompt.rte', 'prompt.cola'],
      );
    } finally {
      m.dispose();
    }
    // A single name applies to every task.
    const all = create(model, 'tpt', tptRaw({ promptFrom: 'prompt.qnli' }), ['mrpc', 'rte'], inputs);
    try {
      for (const t of ['mrpc', 'rte'])
        assert.deepEqual(tensorValue(all, `prompt.${t}`), handed.get('prompt.qnli')!.data);
    } finally {
      all.dispose();
    }
  });

  test('TPT promptFrom: shape mismatch names both shapes; unknown tasks, missing tensors and stage bank are refused', () => {
    const inputs: Tensors = new Map([
      ['prompt.mnli', { shape: [N + 1, d], data: new Float32Array((N + 1) * d) }],
    ]);
    const raw = (extra: Record<string, unknown>) => ({
      bankSize: 8,
      topK: 2,
      taskPromptLength: N,
      bankInit: 'uniform',
      ...extra,
    });
    assert.throws(
      () => create(model, 'tpt', raw({ promptFrom: { rte: 'prompt.mnli' } }), ['rte'], inputs),
      throwsOn(
        'promptFrom',
        new RegExp(`'prompt.mnli' has shape \\[${N + 1}, ${d}\\] but 'prompt.rte' is \\[${N}, ${d}\\]`),
      ),
    );
    assert.throws(
      () => create(model, 'tpt', raw({ promptFrom: { rte: 'prompt.qqp' } }), ['rte'], inputs),
      throwsOn('promptFrom', /no input tensor 'prompt\.qqp' for task 'rte'/),
    );
    assert.throws(
      () => create(model, 'tpt', raw({ promptFrom: { mrcp: 'prompt.mnli' } }), ['rte', 'mrpc'], inputs),
      throwsOn('promptFrom', /names task 'mrcp', which this stage does not train/),
    );
    const parse = methodFactory('tpt').parseConfig;
    assert.throws(
      () => parse(raw({ stage: 'bank', promptFrom: 'prompt.mnli' })),
      throwsOn('promptFrom', /stage 'target' only/),
    );
    assert.throws(
      () => parse(raw({ promptFrom: ['prompt.mnli'] })),
      throwsOn('promptFrom', /expected a tensor name/),
    );
    assert.throws(
      () => parse(raw({ promptFrom: { rte: 3 } })),
      throwsOn('promptFrom', /expected a tensor name/),
    );
    assert.throws(() => parse(raw({ promptFrom: '' })), throwsOn('promptFrom', /is empty/));
  });

  test('trainable tensors and counts at t5-base: each paper default and each released option', () => {
    const dims = (tasks: string[]) => ({ dModel: 768, vocabSize: 32128, tasks });
    const T5_BASE = 222_903_552;
    const report = (method: string, raw: Record<string, unknown>, tasks: string[]) => {
      const f = methodFactory(method);
      return parameterReport(method, f.describe(f.parseConfig(raw), dims(tasks)), dims(tasks), T5_BASE);
    };
    // TPT stage 2: the paper counts a frozen bank (76,800 = 0.0345% of t5-base); the released --is_all tunes it.
    const paper = report('tpt', { bankFrom: 'bank' }, ['rte']);
    assert.equal(paper.total, 76_800);
    assert.equal(paper.frozen, 460_800);
    assert.ok(Math.abs(paper.percentOfBackbone! - 0.03445) < 1e-5, String(paper.percentOfBackbone));
    assert.deepEqual(
      paper.tensors.filter((t) => t.trainable).map((t) => t.name),
      ['prompt.rte'],
    );
    const released = report('tpt', { bankFrom: 'bank', tuneBank: true }, ['rte']);
    assert.equal(released.total, 537_600);
    assert.equal(released.frozen, 0);
    assert.deepEqual(
      released.tensors.filter((t) => t.trainable).map((t) => t.name),
      ['bank.rte', 'prompt.rte'],
    );
    // promptFrom changes where values come from, never what trains.
    assert.deepEqual(report('tpt', { bankFrom: 'bank', promptFrom: 'prompt.mnli' }, ['rte']), paper);
    // ATTEMPT: the paper's 232K counts the LayerNorm; the released code never trains it.
    const six = ['mnli', 'sst2', 'qnli', 'qqp', 'squad', 'record'];
    const attemptPaper = report('attempt', { sources: six }, ['rte']);
    assert.equal(attemptPaper.total, 231_936);
    const attemptReleased = report('attempt', { sources: six, trainableLayerNorm: false }, ['rte']);
    assert.equal(attemptReleased.total, 230_400);
    assert.deepEqual(
      attemptReleased.tensors
        .filter((t) => !t.trainable && t.name.startsWith('attention.'))
        .map((t) => t.name),
      ['attention.ln.gamma', 'attention.ln.beta'],
    );
    assert.deepEqual(report('attempt', { sources: six, attentionFrom: 'attention' }, ['rte']), attemptPaper);
  });

  test("weight decay: each method's released default unless a train block sets it", () => {
    const job = (stages: Record<string, unknown>[], train?: Record<string, unknown>) =>
      parseJobConfig({ backbone: tmp, data: { suite: 'demo' }, stages, ...(train ? { train } : {}) });
    const pt = { name: 'pt', method: { name: 'prompt-tuning', perTask: true }, tasks: ['mnli'] };
    const at = { name: 'at', method: { name: 'attempt', sources: ['prompt.mnli'] }, tasks: ['rte'] };
    const tpt = { name: 'tpt', method: { name: 'tpt', stage: 'bank' }, tasks: ['mnli'] };
    const decay = (stages: Record<string, unknown>[], train?: Record<string, unknown>) =>
      job(stages, train).stages.map((s) => s.train.weightDecay);
    // ATTEMPT's configs set none (0); the prompt-tuning baseline's sets 1e-5; TPT keeps the job default (1e-5).
    assert.deepEqual(decay([pt, at, tpt]), [1e-5, 0, 1e-5]);
    // A top-level value applies to every stage; a stage's own value wins over both.
    assert.deepEqual(decay([pt, at], { weightDecay: 0.01 }), [0.01, 0.01]);
    assert.deepEqual(decay([pt, { ...at, train: { weightDecay: 1e-5 } }]), [1e-5, 1e-5]);
    assert.deepEqual(decay([{ ...pt, train: { steps: 10, warmupSteps: 0 } }, at]), [1e-5, 0]);
    // A method option error inside a job names the stage and the option.
    assert.throws(
      () => job([{ ...at, method: { ...at.method, attentionFrom: '' } }]),
      (e: unknown) =>
        e instanceof JobConfigError &&
        e.field === 'stages[0].method' &&
        /attempt\.attentionFrom:/.test(e.message),
    );
  });
});
