/**
 * PEFT out and in, against the real Hugging Face PEFT on the shipped demo backbone (a T5 folder transformers loads):
 * - `bank export --format peft --task T` writes an adapter that PeftModel.from_pretrained loads and that generates
 *   what `promptmesh predict` generates with the same version;
 * - an ATTEMPT version's task prompt is refused (a per-input mixture), its fixed source prompts are not;
 * - `bank import` of a folder PEFT itself saved (encoder and decoder prompts) keeps the encoder prompt, bit for bit;
 *   other PEFT adapter kinds are refused.
 * Skips with a message where python3 lacks torch, transformers or peft.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { selectBackend } from '../../src/backend/index.js';
import { DirectoryStore, PromptBank } from '../../src/bank/index.js';
import { demoJob } from '../../src/config/demo-job.js';
import { readSafetensors } from '../../src/model/checkpoint/index.js';
import { loadT5Model } from '../../src/model/load-t5.js';
import { loadTokenizer, type Tokenizer } from '../../src/model/tokenizer/index.js';
import { createStageMethod, methodTensors } from '../../src/train/run-job.js';
import { loadTrainTasks } from '../../src/train/task-source.js';
import { cli } from '../helpers/cli.js';

const CHECK = path.resolve('test/helpers/peft_check.py');
const DEMO = path.resolve('assets/demo-backbone');

function pythonPeers(): string | false {
  const r = spawnSync('python3', ['-c', 'import torch, transformers, peft'], { encoding: 'utf8' });
  return r.status === 0
    ? false
    : `skipped: python3 cannot import torch, transformers and peft (bash scripts/setup.sh --python-peers installs them): ${r.stderr.trim().split('\n').at(-1)}`;
}

function python(...args: string[]): Record<string, unknown> {
  const r = spawnSync('python3', [CHECK, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe('PEFT prompt-tuning adapters, out and in', { skip: pythonPeers() }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-peft-'));
  const bankDir = path.join(tmp, 'bank');
  const job = demoJob();
  let tok: Tokenizer;
  let promptData: Float32Array;
  before(async () => {
    await selectBackend({ requested: 'wasm', log: () => {} });
    tok = await loadTokenizer(job.backbone.tokenizer);
    const { model } = loadT5Model(job.backbone.checkpoint);
    const [sources, targets] = [job.stages[0]!, job.stages[1]!];
    // A prompt-tuning version of the demo's source stage and an ATTEMPT version of its target stage, committed as the
    // workers commit them (prompts moved off their initial values, so nothing depends on the initialiser).
    const pt = createStageMethod(sources, model, new Map(), job.maxSourceLength);
    const params = new Map(
      pt.params.map((p) => [
        p.name,
        (p.variable.dataSync() as Float32Array).map((x, i) => x + 0.3 * Math.sin(i * 0.37)),
      ]),
    );
    const ptTensors = methodTensors(pt, params);
    promptData = ptTensors.get('prompt.demo-sentiment')!.data;
    const att = createStageMethod(targets, model, ptTensors, job.maxSourceLength);
    const attTensors = methodTensors(
      att,
      new Map(att.params.map((p) => [p.name, p.variable.dataSync() as Float32Array])),
    );
    const bank = new PromptBank(new DirectoryStore(bankDir));
    const v1 = await bank.commit({
      job: 'demo',
      parent: null,
      step: 60,
      method: 'prompt-tuning',
      config: sources.method,
      tensors: ptTensors,
      tags: ['pt'],
      extra: { stage: 0, stageName: 'sources', final: true },
    });
    await bank.commit({
      job: 'demo',
      parent: v1.id,
      step: 60,
      method: 'attempt',
      config: targets.method,
      tensors: attTensors,
      tags: ['att'],
      extra: { stage: 1, stageName: 'targets', final: true },
    });
    pt.dispose();
    att.dispose();
    model.dispose();
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('export --format peft: PEFT loads it and generates what promptmesh predict generates', async () => {
    const out = path.join(tmp, 'peft-sentiment');
    const r = await cli(
      'bank',
      'export',
      '--bank',
      bankDir,
      'pt',
      '--format',
      'peft',
      '--task',
      'demo-sentiment',
      '--checkpoint',
      DEMO,
      '--out',
      out,
    );
    assert.equal(r.code, 0, r.stderr);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.equal(cfg.peft_type, 'PROMPT_TUNING');
    assert.equal(cfg.task_type, 'SEQ_2_SEQ_LM');
    assert.equal(cfg.num_virtual_tokens, 10);
    assert.equal(cfg.num_transformer_submodules, 1);
    assert.equal(cfg.base_model_name_or_path, DEMO);
    const st = readSafetensors(path.join(out, 'adapter_model.safetensors'), { float32: true });
    assert.deepEqual([...st.tensors.keys()], ['prompt_embeddings']);
    assert.deepEqual(st.tensors.get('prompt_embeddings')!.data, promptData);
    assert.equal(cfg.token_dim, st.tensors.get('prompt_embeddings')!.shape[1]);

    const [task] = loadTrainTasks(job.data, ['demo-sentiment']);
    const sources = task!.validation.slice(0, 6).map((e) => e.source);
    const rows = path.join(tmp, 'rows.jsonl');
    fs.writeFileSync(
      rows,
      sources.map((s) => JSON.stringify({ task: 'demo-sentiment', input: s })).join('\n'),
    );
    const p = await cli(
      'predict',
      '--bank',
      bankDir,
      'pt',
      '--input',
      rows,
      '--mode',
      'generate',
      '--backend',
      'wasm',
    );
    assert.equal(p.code, 0, p.stderr);
    const ours = p.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { output: string }).output);
    const ids = sources.map((s) => tok.encode(s).slice(0, job.maxSourceLength).join(','));
    const hf = python(
      'generate',
      DEMO,
      out,
      ...ids.flatMap((i) => ['--input-ids', i]),
      '--max-new-tokens',
      String(job.maxTargetLength),
    ) as { generated: number[][]; config: string };
    assert.equal(hf.config, 'PromptTuningConfig');
    const theirs = hf.generated.map((g) => tok.decode(g).trim());
    assert.deepEqual(theirs, ours);
    assert.ok(
      ours.some((o) => o.length > 0),
      `only empty generations: ${JSON.stringify(ours)}`,
    );
  });

  test('an ATTEMPT task prompt is refused, naming why; its fixed source prompts export', async () => {
    const out = path.join(tmp, 'peft-att');
    let r = await cli(
      'bank',
      'export',
      '--bank',
      bankDir,
      'att',
      '--format',
      'peft',
      '--task',
      'demo-dining',
      '--checkpoint',
      DEMO,
      '--out',
      out,
    );
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /holds method 'attempt' .*built for each input \(a per-input mixture or retrieval\), which PEFT's prompt tuning, one fixed prompt per task, cannot express/,
    );
    assert.ok(!fs.existsSync(out));
    r = await cli(
      'bank',
      'export',
      '--bank',
      bankDir,
      'att',
      '--format',
      'peft',
      '--tensor',
      'source.prompt.demo-sentiment',
      '--checkpoint',
      DEMO,
      '--out',
      out,
    );
    assert.equal(r.code, 0, r.stderr);
  });

  test('import of a folder PEFT saved keeps its encoder prompt; other PEFT kinds are refused', async () => {
    const saved = path.join(tmp, 'peft-saved');
    const hf = python('save', DEMO, saved, '--virtual-tokens', '5') as { prompt_embeddings: number[][] };
    const r = await cli(
      'bank',
      'import',
      '--bank',
      bankDir,
      saved,
      '--job',
      'from-peft',
      '--task',
      'demo-sentiment',
      '--checkpoint',
      DEMO,
      '--json',
    );
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse(r.stdout) as {
      id: string;
      method: string;
      extra: { importedFrom: { droppedDecoderRows: number } };
    };
    assert.equal(m.method, 'prompt-tuning');
    assert.equal(m.extra.importedFrom.droppedDecoderRows, 5);
    const bank = new PromptBank(new DirectoryStore(bankDir));
    const t = (await bank.load(m.id)).get('prompt.demo-sentiment')!;
    assert.deepEqual(t.shape, [5, hf.prompt_embeddings[0]!.length]);
    assert.deepEqual(t.data, Float32Array.from(hf.prompt_embeddings.slice(0, 5).flat()));
    // An imported prompt becomes a source prompt of an ATTEMPT set with compose.
    const c = await cli(
      'bank',
      'compose',
      '--bank',
      bankDir,
      '--job',
      'mixed',
      '--base',
      'att',
      '--drop',
      'source.prompt.demo-sentiment',
      '--take',
      `${m.id}:prompt.demo-sentiment=source.prompt.demo-sentiment`,
    );
    assert.equal(c.code, 0, c.stderr + c.stdout);

    const lora = path.join(tmp, 'lora');
    fs.mkdirSync(lora);
    fs.writeFileSync(
      path.join(lora, 'adapter_config.json'),
      JSON.stringify({ peft_type: 'LORA', task_type: 'SEQ_2_SEQ_LM' }),
    );
    const bad = await cli('bank', 'import', '--bank', bankDir, lora, '--job', 'lora');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /peft_type is "LORA"; only PROMPT_TUNING adapters/);
  });
});
