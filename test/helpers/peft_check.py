"""Hugging Face PEFT against promptmesh's PEFT folders.

    python3 peft_check.py generate MODEL_DIR ADAPTER_DIR --input-ids 13,7,1 [--input-ids ...] --max-new-tokens 8
        loads the adapter with PeftModel.from_pretrained on the T5 folder and prints the greedy generations' ids
    python3 peft_check.py save MODEL_DIR OUT_DIR --virtual-tokens 5
        makes a PEFT prompt-tuning model (PEFT's seq2seq defaults: encoder and decoder prompts), saves it, and prints
        its prompt_embeddings
"""
import argparse
import json
import sys

import torch
from peft import PeftModel, PromptTuningConfig, TaskType, get_peft_model
from transformers import T5ForConditionalGeneration


# peft 0.21 saves and restores T5ForConditionalGeneration._prepare_encoder_decoder_kwargs_for_generation around
# generate(), a name transformers 5 dropped (now _prepare_text_encoder_decoder_kwargs_for_generation). Prompt tuning's
# generate does not change it (it only passes inputs_embeds with the prompt in front), so point the old name at the new.
if not hasattr(T5ForConditionalGeneration, "_prepare_encoder_decoder_kwargs_for_generation"):
    T5ForConditionalGeneration._prepare_encoder_decoder_kwargs_for_generation = (
        T5ForConditionalGeneration._prepare_text_encoder_decoder_kwargs_for_generation
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("action", choices=["generate", "save"])
    p.add_argument("model")
    p.add_argument("adapter")
    p.add_argument("--input-ids", action="append", default=[])
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--virtual-tokens", type=int, default=5)
    a = p.parse_args()
    torch.manual_seed(0)
    base = T5ForConditionalGeneration.from_pretrained(a.model, torch_dtype=torch.float32).eval()
    if a.action == "save":
        model = get_peft_model(base, PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=a.virtual_tokens))
        model.save_pretrained(a.adapter, safe_serialization=True)
        w = model.prompt_encoder["default"].embedding.weight.detach()
        json.dump({"prompt_embeddings": w.tolist()}, sys.stdout)
        return
    model = PeftModel.from_pretrained(base, a.adapter).eval()
    out = []
    for ids in a.input_ids:
        x = torch.tensor([[int(v) for v in ids.split(",")]])
        with torch.no_grad():
            g = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=a.max_new_tokens,
                               num_beams=1, do_sample=False)
        out.append(g[0].tolist())
    json.dump({"generated": out, "config": type(model.peft_config["default"]).__name__}, sys.stdout)


if __name__ == "__main__":
    main()
