/**
 * Hugging Face PEFT prompt-tuning adapter folders, out and in: `adapter_config.json` (peft_type PROMPT_TUNING,
 * task_type SEQ_2_SEQ_LM) and `adapter_model.safetensors` holding `prompt_embeddings` [n * submodules, d_model].
 * PEFT prepends the first n rows to the encoder's input embeddings with the attention mask extended by ones, which
 * is exactly prompt tuning's [P ; E(x)]; with num_transformer_submodules 2 (PEFT's seq2seq default) the next n rows
 * are decoder prompts used only when training with PEFT, and an import keeps the encoder's n rows.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors } from '../model/checkpoint/safetensors.js';
import { BankInputError } from './errors.js';
import type { BankTensor } from './tensor-bytes.js';

export const PEFT_CONFIG_FILE = 'adapter_config.json';
export const PEFT_WEIGHTS_FILE = 'adapter_model.safetensors';
export const PEFT_TENSOR = 'prompt_embeddings';

export interface PeftBackbone {
  /** Written as base_model_name_or_path: the Hugging Face folder (or hub name) the prompt was trained on. */
  nameOrPath: string;
  dModel: number;
  numLayers: number;
  numHeads: number;
}

/** Writes a prompt [n, d_model] as a PEFT prompt-tuning adapter folder. */
export function writePeftPromptTuning(
  dir: string,
  prompt: BankTensor,
  backbone: PeftBackbone,
  metadata: Record<string, string> = {},
): string[] {
  if (prompt.shape.length !== 2)
    throw new BankInputError(
      `a PEFT prompt must be 2-D [virtual tokens, d_model], got [${prompt.shape.join(', ')}]`,
    );
  const [n, d] = prompt.shape as [number, number];
  if (d !== backbone.dModel)
    throw new BankInputError(`the prompt's width ${d} is not the backbone's d_model ${backbone.dModel}`);
  fs.mkdirSync(dir, { recursive: true });
  const config = {
    peft_type: 'PROMPT_TUNING',
    task_type: 'SEQ_2_SEQ_LM',
    num_virtual_tokens: n,
    token_dim: d,
    num_transformer_submodules: 1,
    num_attention_heads: backbone.numHeads,
    num_layers: backbone.numLayers,
    prompt_tuning_init: 'RANDOM',
    prompt_tuning_init_text: null,
    tokenizer_name_or_path: null,
    base_model_name_or_path: backbone.nameOrPath,
    inference_mode: true,
    revision: null,
  };
  const weights = path.join(dir, PEFT_WEIGHTS_FILE);
  const cfg = path.join(dir, PEFT_CONFIG_FILE);
  writeSafetensors(
    weights,
    { [PEFT_TENSOR]: { dtype: 'F32', shape: [n, d], data: prompt.data } },
    {
      format: 'pt',
      ...metadata,
    },
  );
  fs.writeFileSync(cfg, `${JSON.stringify(config, null, 2)}\n`);
  return [cfg, weights];
}

export interface PeftPromptTuning {
  /** The encoder prompt [n, d]. */
  prompt: BankTensor;
  config: Record<string, unknown>;
  /** Rows dropped (the decoder prompts of num_transformer_submodules 2). */
  droppedRows: number;
}

export function isPeftFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, PEFT_CONFIG_FILE));
}

/** Reads a PEFT prompt-tuning adapter folder; anything PEFT-but-not-prompt-tuning is refused, naming what it is. */
export function readPeftPromptTuning(dir: string): PeftPromptTuning {
  const cfgFile = path.join(dir, PEFT_CONFIG_FILE);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new BankInputError(`${cfgFile}: not readable JSON (${(e as Error).message})`, { cause: e });
  }
  if (config.peft_type !== 'PROMPT_TUNING') {
    throw new BankInputError(
      `${cfgFile}: peft_type is ${JSON.stringify(config.peft_type)}; only PROMPT_TUNING adapters hold a prompt promptmesh can use (LoRA, prefix tuning and P-tuning change or add to the model itself)`,
    );
  }
  if (config.task_type !== undefined && config.task_type !== 'SEQ_2_SEQ_LM') {
    throw new BankInputError(
      `${cfgFile}: task_type is ${JSON.stringify(config.task_type)}; promptmesh prompts are for an encoder-decoder (SEQ_2_SEQ_LM)`,
    );
  }
  const n = config.num_virtual_tokens;
  const d = config.token_dim;
  if (!Number.isInteger(n) || (n as number) < 1 || !Number.isInteger(d) || (d as number) < 1)
    throw new BankInputError(`${cfgFile}: num_virtual_tokens and token_dim must be positive integers`);
  const weights = path.join(dir, PEFT_WEIGHTS_FILE);
  if (!fs.existsSync(weights)) {
    const bin = path.join(dir, 'adapter_model.bin');
    throw new BankInputError(
      fs.existsSync(bin)
        ? `${dir}: only ${path.basename(bin)} (a pickle); save the adapter with safe_serialization=True to get ${PEFT_WEIGHTS_FILE}`
        : `${dir}: no ${PEFT_WEIGHTS_FILE}`,
    );
  }
  const t = readSafetensors(weights, { float32: true }).tensors.get(PEFT_TENSOR);
  if (!t || !(t.data instanceof Float32Array))
    throw new BankInputError(`${weights}: no float tensor '${PEFT_TENSOR}'`);
  const [rows, width] = t.shape as [number, number];
  if (t.shape.length !== 2 || width !== d || rows % (n as number) !== 0) {
    throw new BankInputError(
      `${weights}: '${PEFT_TENSOR}' has shape [${t.shape.join(', ')}], but the config says ${n} virtual tokens of width ${d}`,
    );
  }
  const keep = (n as number) * (d as number);
  return {
    prompt: { shape: [n as number, d as number], data: t.data.slice(0, keep) },
    config,
    droppedRows: rows - (n as number),
  };
}
