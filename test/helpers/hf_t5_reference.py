"""Reference T5 forward with Hugging Face transformers (PyTorch, float32, CPU), for promptmesh's parity tests.

    python3 hf_t5_reference.py MODEL_DIR --input-ids 13,7,1 --decoder-input-ids 0,5

Prints {"encoderHiddenStates": [[...]], "logits": [[...]]} for one example, the same JSON as
`promptmesh model run --json`.
"""
import argparse
import json
import sys

import torch
from transformers import T5ForConditionalGeneration


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--input-ids", required=True)
    p.add_argument("--decoder-input-ids", required=True)
    a = p.parse_args()
    # Loaded as written: promptmesh's config.json must be one current transformers accepts unpatched.
    model = T5ForConditionalGeneration.from_pretrained(a.model, torch_dtype=torch.float32).eval()
    ids = torch.tensor([[int(x) for x in a.input_ids.split(",")]])
    dec = torch.tensor([[int(x) for x in a.decoder_input_ids.split(",")]])
    with torch.no_grad():
        out = model(input_ids=ids, decoder_input_ids=dec)
    json.dump(
        {"encoderHiddenStates": out.encoder_last_hidden_state[0].tolist(), "logits": out.logits[0].tolist()},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
