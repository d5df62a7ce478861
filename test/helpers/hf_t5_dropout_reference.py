"""Hugging Face transformers' T5 (PyTorch, float32, CPU) in training mode with given dropout masks.

    python3 hf_t5_dropout_reference.py MODEL_DIR < request.json

request: {"rate": p, "inputIds": [[...]], "attentionMask": [[...]], "labels": [[...]] (-100 = not counted),
          "masks": {SITE: flat 0/1 list}}. Every dropout of the model (every nn.Dropout module and the functional
dropout on the attention probabilities) is replaced by x * mask / (1 - p) with the mask of its site, named as
promptmesh names them: <stack>.embed, <stack>.<i>.self.probs, <stack>.<i>.self.out, decoder.<i>.cross.probs,
decoder.<i>.cross.out, <stack>.<i>.ff.hidden, <stack>.<i>.ff.out, <stack>.final. A site the model uses that the
request lacks, or a request site the model never uses, is an error: that is what shows the places agree.

Prints {"loss": mean token loss, "grad": d loss / d inputs_embeds as [B][L][d]}.
"""
import json
import sys

import torch
import torch.nn.functional as F
from transformers import T5ForConditionalGeneration

used: set[str] = set()


def main() -> None:
    req = json.load(sys.stdin)
    rate = float(req["rate"])
    masks = req["masks"]
    # Loaded as written: the folder's dropout_rate must be the rate promptmesh trained with.
    model = T5ForConditionalGeneration.from_pretrained(
        sys.argv[1], torch_dtype=torch.float32, attn_implementation="eager"
    )
    if model.config.dropout_rate != rate:
        raise ValueError(f"config.json has dropout_rate {model.config.dropout_rate}, the request {rate}")
    model.train()

    def apply(site: str, x: torch.Tensor) -> torch.Tensor:
        if site not in masks:
            raise KeyError(f"the model drops at {site}, which the request has no mask for")
        used.add(site)
        m = torch.tensor(masks[site], dtype=x.dtype).reshape(x.shape)
        return x * m / (1 - rate)

    class SiteDropout(torch.nn.Module):
        """Replaces one nn.Dropout; a stack's own dropout runs twice (embeddings, then output)."""

        def __init__(self, *sites: str) -> None:
            super().__init__()
            self.sites = sites
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            site = self.sites[self.calls % len(self.sites)]
            self.calls += 1
            return apply(site, x)

    current: list[str] = []
    original_dropout = F.dropout

    def functional_dropout(x, p=0.5, training=True, inplace=False):
        if not current:
            raise RuntimeError("functional dropout outside an attention module")
        if not training or p == 0:
            return x
        return apply(current[-1], x)

    torch.nn.functional.dropout = functional_dropout

    def attention_site(module: torch.nn.Module, site: str) -> None:
        # Hooks return None: a forward hook's return value would replace the module's output.
        def enter(*_: object) -> None:
            current.append(site)

        def leave(*_: object) -> None:
            current.pop()

        module.register_forward_pre_hook(enter)
        module.register_forward_hook(leave)

    for stack_name, stack in (("encoder", model.encoder), ("decoder", model.decoder)):
        stack.dropout = SiteDropout(f"{stack_name}.embed", f"{stack_name}.final")
        for i, block in enumerate(stack.block):
            layers = list(block.layer)
            layers[0].dropout = SiteDropout(f"{stack_name}.{i}.self.out")
            attention_site(layers[0].SelfAttention, f"{stack_name}.{i}.self.probs")
            if stack_name == "decoder":
                layers[1].dropout = SiteDropout(f"{stack_name}.{i}.cross.out")
                attention_site(layers[1].EncDecAttention, f"{stack_name}.{i}.cross.probs")
            layers[-1].dropout = SiteDropout(f"{stack_name}.{i}.ff.out")
            layers[-1].DenseReluDense.dropout = SiteDropout(f"{stack_name}.{i}.ff.hidden")

    ids = torch.tensor(req["inputIds"])
    embeds = model.shared(ids).detach().requires_grad_(True)
    out = model(
        inputs_embeds=embeds,
        attention_mask=torch.tensor(req["attentionMask"]),
        labels=torch.tensor(req["labels"]),
    )
    out.loss.backward()
    torch.nn.functional.dropout = original_dropout
    unused = sorted(set(masks) - used)
    if unused:
        raise KeyError(f"the request has masks the model never used: {unused}")
    json.dump({"loss": out.loss.item(), "grad": embeds.grad.tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
