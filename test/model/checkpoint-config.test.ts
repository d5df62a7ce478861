import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  expectedT5TensorShapes,
  parseT5Config,
  type T5Config,
  T5ConfigError,
  t5ConfigToJson,
  tinyT5Config,
} from '../../src/model/checkpoint/index.js';

// google/flan-t5-small's config.json, verbatim apart from key order.
const FLAN_T5_SMALL = {
  architectures: ['T5ForConditionalGeneration'],
  d_ff: 1024,
  d_kv: 64,
  d_model: 512,
  decoder_start_token_id: 0,
  dense_act_fn: 'gelu_new',
  dropout_rate: 0.1,
  eos_token_id: 1,
  feed_forward_proj: 'gated-gelu',
  initializer_factor: 1.0,
  is_encoder_decoder: true,
  is_gated_act: true,
  layer_norm_epsilon: 1e-6,
  model_type: 't5',
  n_positions: 512,
  num_decoder_layers: 8,
  num_heads: 6,
  num_layers: 8,
  output_past: true,
  pad_token_id: 0,
  relative_attention_max_distance: 128,
  relative_attention_num_buckets: 32,
  tie_word_embeddings: false,
  torch_dtype: 'float32',
  transformers_version: '4.23.1',
  use_cache: true,
  vocab_size: 32128,
};

function configError(json: unknown, field: string | undefined, pattern: RegExp): void {
  assert.throws(
    () => parseT5Config(json, '/ckpt/config.json'),
    (e: unknown) => {
      assert.ok(e instanceof T5ConfigError, String(e));
      assert.equal(e.field, field);
      assert.equal(e.source, '/ckpt/config.json');
      assert.match(e.message, /^\/ckpt\/config\.json: /);
      assert.match(e.message, pattern);
      return true;
    },
  );
}

describe('parseT5Config', () => {
  test('reads flan-t5-small', () => {
    const cfg = parseT5Config(FLAN_T5_SMALL, 'config.json');
    assert.deepEqual(cfg, {
      vocabSize: 32128,
      dModel: 512,
      dKv: 64,
      dFf: 1024,
      numLayers: 8,
      numDecoderLayers: 8,
      numHeads: 6,
      relativeAttentionNumBuckets: 32,
      relativeAttentionMaxDistance: 128,
      layerNormEpsilon: 1e-6,
      dropoutRate: 0.1,
      feedForwardProj: 'gated-gelu',
      tieWordEmbeddings: false,
      padTokenId: 0,
      eosTokenId: 1,
      decoderStartTokenId: 0,
      modelType: 't5',
    } satisfies T5Config);
  });

  test("missing fields take transformers' T5Config defaults", () => {
    const cfg = parseT5Config({ num_layers: 3 }, 'config.json');
    assert.equal(cfg.vocabSize, 32128);
    assert.equal(cfg.dModel, 512);
    assert.equal(cfg.dKv, 64);
    assert.equal(cfg.dFf, 2048);
    assert.equal(cfg.numHeads, 8);
    assert.equal(cfg.numDecoderLayers, 3, 'num_decoder_layers defaults to num_layers');
    assert.equal(cfg.relativeAttentionNumBuckets, 32);
    assert.equal(cfg.relativeAttentionMaxDistance, 128);
    assert.equal(cfg.layerNormEpsilon, 1e-6);
    assert.equal(cfg.dropoutRate, 0.1);
    assert.equal(cfg.feedForwardProj, 'relu');
    assert.equal(cfg.tieWordEmbeddings, true);
    assert.deepEqual([cfg.padTokenId, cfg.eosTokenId, cfg.decoderStartTokenId], [0, 1, 0]);
    assert.equal(cfg.modelType, 't5');
  });

  test('generic aliases (hidden_size, num_attention_heads, ...) are honoured like attribute_map', () => {
    const cfg = parseT5Config(
      { hidden_size: 32, num_attention_heads: 4, num_hidden_layers: 2, head_dim: 8 },
      'c',
    );
    assert.deepEqual([cfg.dModel, cfg.numHeads, cfg.numLayers, cfg.dKv], [32, 4, 2, 8]);
  });

  test('invalid fields name the file and the field', () => {
    configError([], undefined, /expected a JSON object/);
    configError({ d_model: '512' }, 'd_model', /must be an integer, got the string "512"/);
    configError({ d_model: 0 }, 'd_model', /must be >= 1, got 0/);
    configError({ num_heads: 1.5 }, 'num_heads', /must be an integer/);
    configError({ feed_forward_proj: 'gated-silu' }, 'feed_forward_proj', /"relu".*"gated-gelu"/);
    configError(
      { feed_forward_proj: 'gated-gelu', dense_act_fn: 'gelu' },
      'dense_act_fn',
      /means "gelu_new"/,
    );
    configError({ feed_forward_proj: 'relu', is_gated_act: true }, 'is_gated_act', /means false/);
    configError({ tie_word_embeddings: 'yes' }, 'tie_word_embeddings', /true or false/);
    configError({ layer_norm_epsilon: -1 }, 'layer_norm_epsilon', /positive number/);
    configError({ dropout_rate: 1 }, 'dropout_rate', /in \[0, 1\), got 1/);
    configError({ dropout_rate: -0.1 }, 'dropout_rate', /in \[0, 1\)/);
    configError({ dropout_rate: '0.1' }, 'dropout_rate', /the string "0.1"/);
    configError({ vocab_size: 10, eos_token_id: 10 }, 'eos_token_id', /below vocab_size \(10\)/);
    configError({ pad_token_id: null }, 'pad_token_id', /got null/);
    configError({ model_type: 'bart' }, 'model_type', /only t5, mt5/);
    configError({ relative_attention_num_buckets: 2 }, 'relative_attention_num_buckets', />= 4/);
    configError(
      { relative_attention_num_buckets: 32, relative_attention_max_distance: 16 },
      'relative_attention_max_distance',
      /must exceed half/,
    );
  });

  test('t5ConfigToJson writes what transformers writes and parses back to the same config', () => {
    for (const variant of ['v1', 'v1.1'] as const) {
      const cfg = tinyT5Config({ variant });
      const json = t5ConfigToJson(cfg);
      assert.deepEqual(Object.keys(json), [...Object.keys(json)].sort(), 'keys sorted like sort_keys=True');
      assert.deepEqual(json.architectures, ['T5ForConditionalGeneration']);
      assert.equal(json.model_type, 't5');
      assert.equal(json.is_gated_act, variant === 'v1.1');
      assert.equal(json.dense_act_fn, variant === 'v1' ? 'relu' : 'gelu_new');
      assert.equal(json.tie_word_embeddings, variant === 'v1');
      assert.deepEqual(parseT5Config(JSON.parse(JSON.stringify(json)), 'x'), cfg);
    }
    const noDropout = tinyT5Config({ variant: 'v1', dropoutRate: 0 });
    assert.equal(t5ConfigToJson(noDropout).dropout_rate, 0, 'the checkpoint keeps its own dropout_rate');
    assert.equal(parseT5Config(t5ConfigToJson(noDropout), 'x').dropoutRate, 0);
    const flan = parseT5Config(FLAN_T5_SMALL, 'c');
    const written = t5ConfigToJson(flan);
    for (const k of Object.keys(written)) {
      assert.deepEqual(written[k], (FLAN_T5_SMALL as Record<string, unknown>)[k], `field ${k}`);
    }
  });
});

describe('expectedT5TensorShapes', () => {
  test('t5-small (v1, tied) has the 131 tensors of the HF checkpoint with [out, in] shapes', () => {
    const cfg = parseT5Config(
      { d_model: 512, d_kv: 64, d_ff: 2048, num_layers: 6, num_heads: 8, vocab_size: 32128 },
      'c',
    );
    const m = expectedT5TensorShapes(cfg);
    // 1 shared + 6 enc blocks * 8 + 1 enc rel bias + 1 enc final LN + 6 dec blocks * 13 + 1 dec rel bias + 1 LN.
    assert.equal(m.size, 1 + 48 + 1 + 1 + 78 + 1 + 1);
    assert.deepEqual(m.get('shared.weight'), [32128, 512]);
    assert.deepEqual(m.get('encoder.block.0.layer.0.SelfAttention.q.weight'), [512, 512]);
    assert.deepEqual(m.get('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'), [32, 8]);
    assert.equal(m.has('encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight'), false);
    assert.deepEqual(m.get('encoder.block.5.layer.1.DenseReluDense.wi.weight'), [2048, 512]);
    assert.deepEqual(m.get('encoder.block.5.layer.1.DenseReluDense.wo.weight'), [512, 2048]);
    assert.deepEqual(m.get('decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'), [32, 8]);
    assert.equal(m.has('decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight'), false);
    assert.deepEqual(m.get('decoder.block.3.layer.1.EncDecAttention.o.weight'), [512, 512]);
    assert.deepEqual(m.get('decoder.block.3.layer.2.layer_norm.weight'), [512]);
    assert.deepEqual(m.get('decoder.final_layer_norm.weight'), [512]);
    assert.equal(m.has('lm_head.weight'), false);
    assert.equal([...m.keys()][0], 'shared.weight');
  });

  test('flan-t5-small (gated, untied, d_kv*heads != d_model) uses wi_0/wi_1 and has lm_head', () => {
    const m = expectedT5TensorShapes(parseT5Config(FLAN_T5_SMALL, 'c'));
    assert.deepEqual(m.get('encoder.block.7.layer.0.SelfAttention.k.weight'), [384, 512]);
    assert.deepEqual(m.get('encoder.block.7.layer.0.SelfAttention.o.weight'), [512, 384]);
    assert.deepEqual(m.get('decoder.block.7.layer.2.DenseReluDense.wi_0.weight'), [1024, 512]);
    assert.deepEqual(m.get('decoder.block.7.layer.2.DenseReluDense.wi_1.weight'), [1024, 512]);
    assert.equal(m.has('decoder.block.7.layer.2.DenseReluDense.wi.weight'), false);
    assert.deepEqual(m.get('lm_head.weight'), [32128, 512]);
    assert.equal([...m.keys()].at(-1), 'lm_head.weight');
    assert.equal(m.size, 1 + 8 * 9 + 1 + 1 + 8 * 14 + 1 + 1 + 1);
  });
});
