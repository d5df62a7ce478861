import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../backend/index.js';
import { loadT5Model } from '../../model/load-t5.js';
import { type CliCommand, optBool, optString, parseIntList, requireString, UsageError } from '../command.js';

export const command: CliCommand = {
  path: ['model', 'run'],
  summary: 'Run the frozen T5 on token ids and print encoder states and decoder logits (for parity checks)',
  usage: '--checkpoint DIR --input-ids IDS [--decoder-input-ids IDS] [--json] [--backend NAME]',
  description: `
Loads a Hugging Face T5 folder (config.json + model.safetensors, or a sharded model.safetensors.index.json),
runs the encoder on --input-ids and the decoder on --decoder-input-ids (default: the decoder start token), and
prints the last encoder layer after the final layer norm and the decoder's LM logits, one array per position, at
full float32 precision. Compare them with another implementation, e.g. in Python:
  out = T5ForConditionalGeneration.from_pretrained(DIR)(input_ids=torch.tensor([[13,7,1]]),
        decoder_input_ids=torch.tensor([[0,5]]))
  out.encoder_last_hidden_state, out.logits`,
  examples: [
    'promptmesh model run --checkpoint assets/demo-backbone --input-ids 13,7,1 --decoder-input-ids 0,5 --json',
    'promptmesh model run --checkpoint ./tiny-t5 --input-ids 5,6,1 --backend cpu',
  ],
  options: [
    { name: 'checkpoint', type: 'string', value: 'DIR', description: 'Hugging Face T5 model folder' },
    { name: 'input-ids', type: 'string', value: 'IDS', description: 'encoder token ids, comma-separated' },
    {
      name: 'decoder-input-ids',
      type: 'string',
      value: 'IDS',
      description: 'decoder token ids, comma-separated (default: the decoder start token)',
    },
    { name: 'json', type: 'boolean', description: 'print one JSON object {encoderHiddenStates, logits}' },
    {
      name: 'backend',
      type: 'string',
      value: 'NAME',
      description: 'node-gpu | node | wasm | cpu | auto (env PROMPTMESH_BACKEND)',
    },
  ],
  async run(ctx) {
    const dir = requireString(ctx, 'checkpoint');
    const inputIds = parseIntList('input-ids', requireString(ctx, 'input-ids'));
    if (inputIds.length === 0) throw new UsageError('--input-ids needs at least one id');
    await selectBackend({ requested: optString(ctx, 'backend'), log: (l) => ctx.stderr.write(`${l}\n`) });
    const { model, warnings } = loadT5Model(dir);
    for (const w of warnings) ctx.stderr.write(`warning: ${w}\n`);
    const cfg = model.config;
    const decText = optString(ctx, 'decoder-input-ids');
    const decIds = decText ? parseIntList('decoder-input-ids', decText) : [cfg.decoderStartTokenId];
    for (const [flag, ids] of [
      ['input-ids', inputIds],
      ['decoder-input-ids', decIds],
    ] as const) {
      const bad = ids.find((i) => i < 0 || i >= cfg.vocabSize);
      if (bad !== undefined)
        throw new UsageError(`--${flag}: id ${bad} is outside the vocabulary [0, ${cfg.vocabSize})`);
    }
    const [enc, logits] = tf.tidy(() => {
      const ids = tf.tensor2d([inputIds], [1, inputIds.length], 'int32');
      const mask = tf.ones([1, inputIds.length]) as tf.Tensor2D;
      const e = model.encode(model.embed(ids), mask);
      const dec = model.decode(tf.tensor2d([decIds], [1, decIds.length], 'int32'), e, mask);
      return [e, model.lmLogits(dec)];
    });
    const result = {
      encoderHiddenStates: (enc.arraySync() as number[][][])[0]!,
      logits: (logits.arraySync() as number[][][])[0]!,
    };
    tf.dispose([enc, logits]);
    model.dispose();
    if (optBool(ctx, 'json')) {
      ctx.stdout.write(`${JSON.stringify(result)}\n`);
    } else {
      ctx.stdout.write(
        `encoder hidden states [${inputIds.length} x ${cfg.dModel}] (after the final layer norm):\n`,
      );
      result.encoderHiddenStates.forEach((row, i) => {
        ctx.stdout.write(
          `  ${i} (id ${inputIds[i]}): ${row
            .slice(0, 6)
            .map((x) => x.toFixed(6))
            .join(' ')} ...\n`,
        );
      });
      ctx.stdout.write(`decoder logits [${decIds.length} x ${cfg.vocabSize}]:\n`);
      result.logits.forEach((row, i) => {
        let best = 0;
        for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
        ctx.stdout.write(`  ${i} (id ${decIds[i]}): argmax ${best} (${row[best]!.toFixed(6)})\n`);
      });
    }
    return 0;
  },
};
