"""Forward+backward training throughput: llmlab's TransformerLM vs transformers' GPT2LMHeadModel.

Both models get the same GPT-2 configuration (preset `gpt2-12m`: 6 layers, d_model 384, 6 heads,
context 256, vocab 4096), fp32, dropout 0, the same random batch and the same thread count; HF uses
its default attention implementation. Timed steps alternate between the two models (and which one
goes first), so drifts in machine load hit both alike.

    python bench/model_throughput.py            # a table
    python bench/model_throughput.py --json     # one JSON object (tokens_per_s_llmlab, tokens_per_s_hf, speedup_vs_hf)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def build_models(batch: int, seed: int):
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    from llmlab.config import preset

    transformers.logging.set_verbosity_error()
    from llmlab.model import TransformerLM

    cfg = preset("gpt2-12m")
    torch.manual_seed(seed)
    ours = TransformerLM(cfg)
    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.context_length, n_embd=cfg.d_model, n_layer=cfg.n_layer,
        n_head=cfg.n_head, n_inner=cfg.d_ff, activation_function="gelu_new", layer_norm_epsilon=cfg.norm_eps,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=None,  # GPT-2's 50256 is outside this 4096-token vocabulary
    )
    hf = GPT2LMHeadModel(hf_cfg)
    ids = torch.randint(0, cfg.vocab_size, (batch, cfg.context_length), generator=torch.Generator().manual_seed(seed))
    n_ours = sum(p.numel() for p in ours.parameters())
    n_hf = sum(p.numel() for p in hf.parameters())
    if n_ours != n_hf:
        raise SystemExit(f"the two models differ in size ({n_ours} vs {n_hf} parameters); not a fair comparison")
    return cfg, ours.train(), hf.train(), ids, n_ours, hf.config._attn_implementation


def step(model, ids) -> float:
    """One forward+backward on next-token cross-entropy (labels = inputs, shifted inside the model)."""
    t0 = time.perf_counter()
    loss = model(ids, labels=ids).loss
    loss.backward()
    for p in model.parameters():
        p.grad = None
    del loss
    return time.perf_counter() - t0


def run(batch: int, iters: int, warmup: int, threads: int | None, seed: int) -> dict:
    import os

    import torch

    if threads:
        torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    cfg, ours, hf, ids, n_params, attn_impl = build_models(batch, seed)
    models = {"llmlab": ours, "hf": hf}
    for _ in range(warmup):
        for m in models.values():
            step(m, ids)
    times: dict[str, list[float]] = {"llmlab": [], "hf": []}
    for i in range(iters):
        order = ("llmlab", "hf") if i % 2 == 0 else ("hf", "llmlab")
        for name in order:
            times[name].append(step(models[name], ids))
    tokens = batch * cfg.context_length
    # The median step time resists one-off stalls (another process, a page fault storm).
    tps = {name: tokens / statistics.median(ts) for name, ts in times.items()}
    return {
        "tokens_per_s_llmlab": round(tps["llmlab"], 1),
        "tokens_per_s_hf": round(tps["hf"], 1),
        "speedup_vs_hf": round(tps["llmlab"] / tps["hf"], 3),
        "batch": batch,
        "seq_len": cfg.context_length,
        "params": n_params,
        "iters": iters,
        "warmup": warmup,
        "threads": torch.get_num_threads(),
        "hf_attn_implementation": attn_impl,
        "torch": torch.__version__,
        # Other processes competing for the cores make both figures (and less so their ratio) noisy.
        # Taken before the run: during it, this benchmark's own threads count too.
        "load_average_1m": round(load_before, 2),
        "cpu_count": os.cpu_count(),
        "step_s_llmlab": [round(t, 4) for t in times["llmlab"]],
        "step_s_hf": [round(t, 4) for t in times["hf"]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object")
    args = parser.parse_args(argv)
    result = run(args.batch, args.iters, args.warmup, args.threads, args.seed)
    if args.json:
        print(json.dumps(result))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"forward+backward, gpt2-12m ({result['params'] / 1e6:.1f}M params), batch {result['batch']} x "
        f"{result['seq_len']}, fp32, {result['threads']} threads"
    )
    for col in ("model", "median step (s)", "tokens/s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    labels = {"llmlab": "llmlab TransformerLM",
              "hf": f"transformers GPT2LMHeadModel ({result['hf_attn_implementation']} attention)"}
    for name, label in labels.items():
        tps = result[f"tokens_per_s_{name}"]
        table.add_row(label, f"{result['batch'] * result['seq_len'] / tps:.3f}", f"{tps:,.0f}")
    Console().print(table)
    print(f"speedup vs transformers: {result['speedup_vs_hf']:.2f}x (goal >= 1.3x)")
    if result["load_average_1m"] > 0.5:
        print(f"note: the load average was {result['load_average_1m']} on {result['cpu_count']} cores before the "
              "run: other processes may have been running, so the figures may be noisy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
