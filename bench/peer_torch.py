"""PyTorch side of `npm run bench -- peer`: the step bench/backbone.ts times, on the same checkpoint.

Forward + backward of transformers' T5ForConditionalGeneration (float32, CPU, eval mode, every weight frozen) to
the input embeddings only, on the same deterministic ids and labels as bench/backbone.ts. Prints one JSON line:
min step ms over the timed steps, the loss, and peak RSS (VmHWM) for the load and for the steps.

    python3 bench/peer_torch.py --model DIR [--batch 8] [--src-len 128] [--tgt-len 128] [--steps 3] [--threads 2]
    python3 bench/peer_torch.py --check    # exit 2 with the install command if torch/transformers are missing
"""

import argparse
import json
import sys
import time
from pathlib import Path

INSTALL = "pip install --retries 0 torch transformers safetensors"


def proc_status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def reset_peak_rss() -> bool:
    """Resets VmHWM so the next reading covers the steps alone (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


PROFILE_TOP = 12


def profile_step(step) -> dict:
    """One step under torch.profiler: self CPU time per op (the calling thread's wall time) and FLOPs where the
    profiler counts them (matmuls), largest first."""
    from torch.profiler import ProfilerActivity, profile

    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        step()
    step_ms = (time.perf_counter() - t0) * 1000
    ops = []
    for e in prof.key_averages():
        op = {"name": e.key, "ms": round(e.self_cpu_time_total / 1000, 1), "calls": e.count}
        if e.flops:
            op["gflop"] = round(e.flops / 1e9, 2)
        ops.append(op)
    ops.sort(key=lambda o: -o["ms"])
    return {
        "stepMs": round(step_ms, 1),
        "opMs": round(sum(o["ms"] for o in ops), 1),
        "ops": ops[:PROFILE_TOP],
    }


def import_or_exit():
    try:
        import safetensors  # noqa: F401  (transformers reads model.safetensors through it)
        import torch
        import transformers
    except ImportError as err:
        print(f"peer_torch.py: {err}; install with: {INSTALL}", file=sys.stderr)
        sys.exit(2)
    return torch, transformers


def load_model(torch, transformers, model_dir: str):
    transformers.utils.logging.disable_progress_bar()
    model = transformers.T5ForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()  # no dropout, as promptmesh's frozen model
    model.requires_grad_(False)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="Hugging Face T5 folder (config.json + model.safetensors)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--src-len", type=int, default=128)
    ap.add_argument("--tgt-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="one extra step under torch.profiler, by op")
    ap.add_argument("--check", action="store_true", help="print versions as JSON, exit 2 if anything is missing")
    args = ap.parse_args()

    if args.check:
        try:
            import safetensors
            import torch
            import transformers
        except ImportError as err:
            print(json.dumps({"missing": str(err)}))
            sys.exit(2)
        versions = {"torch": torch.__version__, "transformers": transformers.__version__}
        print(json.dumps({**versions, "safetensors": safetensors.__version__}))
        return
    if not args.model:
        ap.error("--model is required")

    torch, transformers = import_or_exit()
    torch.set_num_threads(args.threads)
    model = load_model(torch, transformers, args.model)

    B, L, T = args.batch, args.src_len, args.tgt_len
    V = model.config.vocab_size
    # The ids and labels of bench/backbone.ts's backboneStep, element for element (row-major [B, L] / [B, T]).
    ids = (2 + (torch.arange(B * L, dtype=torch.int64) * 7919) % (V - 2)).view(B, L)
    labels = (2 + (torch.arange(B * T, dtype=torch.int64) * 104729) % (V - 2)).view(B, T)
    mask = torch.ones(B, L, dtype=torch.int64)
    with torch.no_grad():
        embeds = model.shared(ids)  # looked up once outside the step, as backbone.ts does

    def step() -> float:
        e = embeds.detach().requires_grad_(True)
        out = model(inputs_embeds=e, attention_mask=mask, labels=labels, use_cache=False)
        (grad,) = torch.autograd.grad(out.loss, e)
        del grad
        return out.loss.item()

    load_peak_kb = proc_status_kb("VmHWM")
    loaded_kb = proc_status_kb("VmRSS")
    reset = reset_peak_rss()

    loss = step()  # warm-up: oneDNN/MKL pick kernels and the allocator settles
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append((time.perf_counter() - t0) * 1000)

    step_peak_kb = proc_status_kb("VmHWM")
    result = {
        "side": "torch",
        "tgtLen": T,
        "stepMs": round(min(times), 1),
        "stepsMs": [round(t, 1) for t in times],
        "loss": loss,
        "peakRssMb": round(max(load_peak_kb, step_peak_kb) / 1024, 1),
        "loadPeakRssMb": round(load_peak_kb / 1024, 1),
        "loadedRssMb": round(loaded_kb / 1024, 1),
        "stepPeakRssMb": round(step_peak_kb / 1024, 1) if reset else None,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attnImplementation": getattr(model.config, "_attn_implementation", None),
    }
    if args.profile:
        result["profile"] = profile_step(step)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
