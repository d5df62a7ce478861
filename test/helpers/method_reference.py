"""Reference forward passes of the prompt methods in PyTorch, on Hugging Face transformers' T5, for promptmesh's
`method run` parity tests. Written from the methods' released math, not from promptmesh's code:

- prompt tuning (Lester et al.): [P ; E(x)].
- ATTEMPT (AkariAsai/ATTEMPT, attempt/third_party/models/t5/modeling_t5.py, T5Stack.forward, attn_method "sub"):
  x_hat = max over positions of E; candidates = [sources..., target]; keys = max over each candidate's tokens;
  q = LayerNorm(W_up(SiLU(W_down(x_hat)))); a = softmax(keys . q / T); P = sum_j a_j C_j + target.
- TPT (mlwu22/TPT, utils.py max_pooling / avg_pooling, models.py): q = max (or mean) over positions of E;
  idx = sort(topk(q . bank^T, k)); P = [bank[idx] ; task prompt] (stage 2) or bank[idx] (stage 1).
- SPT (Bari et al. 2022; no released code, the design of /work/shared/docs/METHODS.md section 4):
  z = mean of E over the example's own real input tokens (its discrete prompt), s_i = cos(z, K_i) / tau,
  top-k slots by s, w = softmax over them,
  P = [sum_i w_i M_i ; P_param].

Then out = T5ForConditionalGeneration(inputs_embeds=[P ; E], attention_mask=[1 ; mask], labels) in eval mode
(dropout off); the loss is transformers' mean token cross-entropy (label pads = -100).

    python3 method_reference.py MODEL_DIR --method NAME --params FILE.safetensors --config JSON
        --task T [--task T ...] --input-ids 13,7,1 [--input-ids ...] --labels 5,1 [--labels ...]
        [--max-source-length N]

Prints {"prompts": [B][P][d], "loss": x, "weights": [B][J] | null, "retrieved": [B][k] | null}, the JSON of
`promptmesh method run --json`. Options not given in --config take the defaults promptmesh documents.
"""
import argparse
import json
import math
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import T5ForConditionalGeneration


def load_model(model_dir):
    # Loaded as written: promptmesh's config.json must be one current transformers accepts unpatched.
    return T5ForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()


def ids_list(text):
    return [int(x) for x in text.split(",") if x.strip()]


def pad(rows, value):
    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), value, dtype=torch.long)
    mask = torch.zeros((len(rows), L))
    for b, r in enumerate(rows):
        ids[b, : len(r)] = torch.tensor(r)
        mask[b, : len(r)] = 1
    return ids, mask


def max_over_positions(E, mask, include_pads):
    """torch.max(E, 1) as both released codes do; without the pads when include_pads is False."""
    if include_pads:
        return E.max(dim=1).values
    return E.masked_fill(mask.unsqueeze(-1) == 0, float("-inf")).max(dim=1).values


def prompt_tuning(cfg, P, tasks, E, mask):
    per_task = cfg.get("perTask", False)
    rows = [P[f"prompt.{t}"] if per_task else P["prompt"] for t in tasks]
    return torch.stack(rows), None, None


def attempt(cfg, P, tasks, E, mask):
    assert cfg.get("attn", "sub") == "sub", "the reference implements the released 'sub' attention"
    assert cfg.get("includeTarget", True), "the reference implements the released candidates (sources + target)"
    d = E.shape[-1]
    T = cfg.get("temperature", d * math.e)
    multi = cfg.get("multiTask", False)
    target = torch.stack([P[f"target.{t}"] if multi else P["target"] for t in tasks])  # B x n x d
    sources = torch.stack([P[f"source.{s}"] for s in cfg["sources"]])  # t x n x d
    B = E.shape[0]
    # mul_prefix_emb_added: B x (t + 1) x n x d, and its keys: the max over each candidate's n tokens.
    candidates = torch.cat([sources.unsqueeze(0).repeat(B, 1, 1, 1), target.unsqueeze(1)], dim=1)
    keys = candidates.max(dim=2).values
    x_hat = max_over_positions(E, mask, cfg.get("poolPadding", False))
    r = P["attention.down"].shape[1]
    W_down = torch.nn.Linear(d, r, bias=False)
    W_up = torch.nn.Linear(r, d, bias=False)
    ln = torch.nn.LayerNorm(d)  # eps 1e-5, torch's default, as the released code
    with torch.no_grad():
        W_down.weight.copy_(P["attention.down"].T)
        W_up.weight.copy_(P["attention.up"].T)
        ln.weight.copy_(P["attention.ln.gamma"])
        ln.bias.copy_(P["attention.ln.beta"])
    q = ln(W_up(torch.nn.SiLU()(W_down(x_hat)))).unsqueeze(-1)  # B x d x 1
    scores = keys.bmm(q).squeeze(-1) / T
    a = F.softmax(scores, -1)
    prompts = torch.einsum("bp,bpld->bld", a, candidates) + target
    return prompts, a, None


def tpt(cfg, P, tasks, E, mask):
    k = cfg.get("topK", 100)
    stage = cfg.get("stage", "target")
    selector = cfg.get("selector", "maxPooling")
    assert selector in ("maxPooling", "avgPooling"), "the reference implements the released max/avg pooling"
    mask_pads = cfg.get("maskPadding", True)
    if selector == "maxPooling":
        q = max_over_positions(E, mask, not mask_pads)
    elif mask_pads:
        q = (E * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    else:
        q = E.mean(dim=1)
    tune_bank = cfg.get("tuneBank", False)
    rows, retrieved = [], []
    for b, t in enumerate(tasks):
        bank = P[f"bank.{t}"] if tune_bank else P["bank"]
        idx = torch.topk(q[b : b + 1] @ bank.T, k=k, dim=-1).indices
        idx, _ = torch.sort(idx, dim=-1)  # bank order (promptmesh also sorts for avgPooling)
        idx = idx.flatten()
        retrieved.append(idx.tolist())
        prompt = bank[idx]
        if stage == "target":
            prompt = torch.cat([prompt, P[f"prompt.{t}"]], dim=0)
        rows.append(prompt)
    return torch.stack(rows), None, retrieved


def spt(cfg, P, tasks, E, mask):
    k = cfg.get("topK", 4)
    tau = cfg.get("tau", 0.1)
    memory, keys = P["memory"], P["keys"]
    shared_prompt = cfg.get("sharedPrompt", True)
    unit_keys = F.normalize(keys, dim=-1, eps=0)
    rows, retrieved = [], []
    for b, t in enumerate(tasks):
        # the example's own discrete prompt: the mean of E over its real tokens
        z = (E[b] * mask[b].unsqueeze(-1)).sum(0) / mask[b].sum()
        z = z / z.norm()
        s = (unit_keys @ z) / tau
        top = torch.topk(s, k).indices
        w = F.softmax(s[top], -1)
        mem = (w[:, None, None] * memory[top]).sum(0)
        param = P["prompt"] if shared_prompt else P[f"prompt.{t}"]
        rows.append(torch.cat([mem, param], 0))
        retrieved.append(top.tolist())
    return torch.stack(rows), None, retrieved


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--method", required=True)
    p.add_argument("--params", required=True)
    p.add_argument("--config", default="{}")
    p.add_argument("--task", action="append", required=True)
    p.add_argument("--input-ids", action="append", required=True)
    p.add_argument("--labels", action="append", required=True)
    p.add_argument("--max-source-length", type=int)
    a = p.parse_args()
    cfg = json.loads(a.config)
    model = load_model(a.model)
    params = load_file(a.params)
    inputs = [ids_list(x) for x in a.input_ids]
    labels = [ids_list(x) for x in a.labels]
    tasks = a.task if len(a.task) == len(inputs) else a.task * len(inputs)
    ids, mask = pad(inputs, model.config.pad_token_id)
    released_padding = (a.method == "attempt" and cfg.get("poolPadding", False)) or (
        a.method == "tpt" and not cfg.get("maskPadding", True)
    )
    if released_padding:
        # As released: every input padded to the fixed max_source_length; ATTEMPT keeps the tokenizer's mask
        # (pads enter only its max-pool), TPT passes no attention mask at all (pads are attended).
        ids, mask = pad(inputs + [[model.config.pad_token_id] * a.max_source_length], model.config.pad_token_id)
        ids, mask = ids[:-1], mask[:-1]
        if a.method == "tpt":
            mask = torch.ones_like(mask)
    lab, _ = pad(labels, -100)
    with torch.no_grad():
        E = model.shared(ids)
        if a.method == "prompt-tuning":
            prompts, weights, retrieved = prompt_tuning(cfg, params, tasks, E, mask)
        elif a.method == "attempt":
            prompts, weights, retrieved = attempt(cfg, params, tasks, E, mask)
        elif a.method == "tpt":
            prompts, weights, retrieved = tpt(cfg, params, tasks, E, mask)
        elif a.method == "spt":
            prompts, weights, retrieved = spt(cfg, params, tasks, E, mask)
        else:
            raise SystemExit(f"unknown method {a.method}")
        full_mask = torch.cat([torch.ones(prompts.shape[:2]), mask], dim=1)
        out = model(inputs_embeds=torch.cat([prompts, E], dim=1), attention_mask=full_mask, labels=lab)
    json.dump(
        {
            "prompts": prompts.tolist(),
            "loss": out.loss.item(),
            "weights": None if weights is None else weights.tolist(),
            "retrieved": retrieved,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
