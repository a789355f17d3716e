"""Training throughput: llmlab's full trainer step vs a bare PyTorch loop on the same model (the
trainer's overhead), and vs Hugging Face transformers' GPT-2 trained on the same configuration.

All three run in one process, in interleaved rounds, with the same threads, batch and optimizer
settings (AdamW, clipping at 1.0, fp32). The trainer reads real token shards from disk through the
resumable loader and writes metrics.jsonl every step, as `llmlab pretrain` does.

    python bench/train_throughput.py            # a table
    python bench/train_throughput.py --json     # {"trainer_overhead": ..., "speedup_vs_hf": ..., ...}
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmlab.config import preset  # noqa: E402
from llmlab.data.loader import WindowLoader  # noqa: E402
from llmlab.data.shards import ShardedSplit  # noqa: E402
from llmlab.model import TransformerLM  # noqa: E402
from llmlab.train.config import TrainConfig  # noqa: E402
from llmlab.train.objectives import NextTokenLoss  # noqa: E402
from llmlab.train.optim import make_optimizer  # noqa: E402
from llmlab.train.trainer import Trainer  # noqa: E402


def make_split(directory: Path, vocab: int, tokens: int) -> ShardedSplit:
    arr = np.random.default_rng(0).integers(0, vocab, size=tokens, dtype=np.uint16)
    arr.tofile(directory / "train_000000.bin")
    return ShardedSplit("train", [np.memmap(directory / "train_000000.bin", dtype=np.uint16, mode="r")], 0)


def bare_step_fn(model, batches):
    opt = make_optimizer(model, 3e-4, 0.1)

    def step():
        b = next(batches)
        loss = model(b["input_ids"], targets=b["targets"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def trainer_step_fn(model, batches, out: Path):
    cfg = TrainConfig(data="-", out=str(out), max_steps=10**6, lr=3e-4, warmup_steps=10, progress=False, precision="fp32")
    trainer = Trainer(model, NextTokenLoss(), batches, cfg, device=torch.device("cpu"), log=lambda *_: None)
    trainer.plan(1)
    out.mkdir(parents=True, exist_ok=True)

    def step():
        record = trainer.train_step()
        record.pop("_step_tokens")
        trainer.metrics.write(record)

    return step


def hf_step_fn(cfg, batches):
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.context_length, n_embd=cfg.d_model, n_layer=cfg.n_layer,
        n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )
    model = GPT2LMHeadModel(hf_cfg).train()
    opt = make_optimizer(model, 3e-4, 0.1)

    def step():
        b = next(batches)
        # HF shifts the labels itself (T-1 predictions for T inputs; the forward work is the same).
        loss = model(input_ids=b["input_ids"], labels=b["input_ids"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpt2-12m")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="steps per round per contender")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = preset(args.preset)
    tmp = Path(tempfile.mkdtemp(prefix="llmlab-bench-"))
    split = make_split(tmp, cfg.vocab_size, args.batch_size * args.seq_len * (args.rounds + 2) * args.steps * 3 + 10)

    def loader():
        return WindowLoader(split, args.seq_len, args.batch_size, seed=0)

    torch.manual_seed(0)
    contenders = {
        "bare PyTorch loop": bare_step_fn(TransformerLM(cfg).train(), loader()),
        "llmlab Trainer": trainer_step_fn(TransformerLM(cfg).train(), loader(), tmp / "run"),
    }
    if not args.skip_hf:
        contenders["transformers GPT-2"] = hf_step_fn(cfg, loader())
    tokens_per_step = args.batch_size * args.seq_len
    for step in contenders.values():  # warm up allocators and kernels
        step()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, step in contenders.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - t0) / args.steps)
    rate = {name: tokens_per_step / statistics.median(ts) for name, ts in times.items()}
    result = {
        "tokens_per_s_bare": rate["bare PyTorch loop"],
        "tokens_per_s_trainer": rate["llmlab Trainer"],
        "trainer_overhead": rate["bare PyTorch loop"] / rate["llmlab Trainer"] - 1.0,
        "threads": torch.get_num_threads(),
        "config": {"preset": args.preset, "batch_size": args.batch_size, "seq_len": args.seq_len},
    }
    if "transformers GPT-2" in rate:
        result["tokens_per_s_hf"] = rate["transformers GPT-2"]
        result["speedup_vs_hf"] = rate["llmlab Trainer"] / rate["transformers GPT-2"]
    if args.json:
        print(json.dumps(result))
        return
    print(f"training throughput, {args.preset}, batch {args.batch_size} x {args.seq_len}, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} rounds")
    for name, r in rate.items():
        print(f"  {name:<20} {r:>10,.0f} tokens/s")
    print(f"  trainer overhead vs bare loop: {100 * result['trainer_overhead']:+.1f}%  (goal: under 5%)")
    if "speedup_vs_hf" in result:
        print(f"  llmlab trainer vs transformers: {result['speedup_vs_hf']:.2f}x  (goal: at least 1.3x)")


if __name__ == "__main__":
    main()
