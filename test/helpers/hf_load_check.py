"""Loads a promptmesh-written T5 folder in Hugging Face transformers exactly as written (no patching) and prints
its config fields' Python types, one forward pass and, when the folder has a tokenizer, the ids of given texts.

    python3 hf_load_check.py MODEL_DIR --input-ids 13,7,1 --decoder-input-ids 0,5 [--text "..." ...]
"""
import argparse
import json
import sys

import torch
from transformers import AutoConfig, AutoTokenizer, T5ForConditionalGeneration


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--input-ids", required=True)
    p.add_argument("--decoder-input-ids", required=True)
    p.add_argument("--text", action="append", default=[])
    a = p.parse_args()
    config = AutoConfig.from_pretrained(a.model)
    model = T5ForConditionalGeneration.from_pretrained(a.model, torch_dtype=torch.float32).eval()
    ids = torch.tensor([[int(x) for x in a.input_ids.split(",")]])
    dec = torch.tensor([[int(x) for x in a.decoder_input_ids.split(",")]])
    with torch.no_grad():
        out = model(input_ids=ids, decoder_input_ids=dec)
    result = {
        "types": {k: type(getattr(config, k)).__name__ for k in ("initializer_factor", "dropout_rate", "layer_norm_epsilon")},
        "logits": out.logits[0].tolist(),
    }
    if a.text:
        tok = AutoTokenizer.from_pretrained(a.model)
        result["tokenizer"] = type(tok).__name__
        result["ids"] = [tok(t).input_ids for t in a.text]
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
