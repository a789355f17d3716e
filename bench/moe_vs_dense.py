"""Mixture of experts vs a dense model with the same active parameters and training FLOPs, on tinyworld.

The dense model is preset `tiny` (d_ff F); the MoE model is the same with every MLP replaced by
`--experts` experts of width F/2, two per token, so each token runs the same MLP width (plus a
d_model x experts router: the FLOPs below show the difference is well under 1%). Both train
through `llmlab pretrain` on the same tinyworld shards, the same steps, batch, seed and learning
rate; reported per model: total and active parameters, training FLOPs per token, validation loss
and training tokens/s (tokens over the run's training seconds, evaluation included for both).

    python bench/moe_vs_dense.py            # a table
    python bench/moe_vs_dense.py --json     # one JSON object
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

LLMLAB = [sys.executable, "-m", "llmlab.cli.main"]


def run(args: list[str]) -> dict:
    done = subprocess.run(LLMLAB + args + ["--json"], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"llmlab {' '.join(args[:2])} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from llmlab.config import preset
    from llmlab.model.accounting import count_parameters, flops_per_token

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default="2M", help="tinyworld corpus size (default 2M)")
    ap.add_argument("--steps", type=int, default=1000, help="optimizer steps per model (default 1000)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--experts", type=int, default=4, help="experts per MoE layer (default 4; 2 per token)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    dense_ff = preset("tiny").d_ff
    models = {"dense": {}, "moe": {"n_experts": args.experts, "experts_per_token": 2, "d_ff": dense_ff // 2}}
    result: dict = {"steps": args.steps, "batch_size": args.batch_size, "seq_len": args.seq_len}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run(["data", "tinyworld", "--out", str(tmp / "tw"), "--tokens", args.tokens, "--no-progress"])
        run(["data", "prepare", "--input", str(tmp / "tw"), "--train-tokenizer", "--vocab-size", "2048",
             "--out", str(tmp / "shards"), "--no-progress"])
        for name, fields in models.items():
            (tmp / f"{name}.json").write_text(json.dumps(fields))
            cfg = preset("tiny", **fields)
            extra = ["--threads", str(args.threads)] if args.threads else []
            out = run(["pretrain", "--data", str(tmp / "shards"), "--preset", "tiny", "--model-config",
                       str(tmp / f"{name}.json"), "--out", str(tmp / name), "--max-steps", str(args.steps),
                       "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len), "--warmup-steps", "30",
                       "--eval-every", str(args.steps), "--save-every", str(args.steps), "--samples", "0",
                       "--precision", "fp32", "--no-progress", *extra])
            result[name] = {
                "params": count_parameters(cfg).total, "active_params": count_parameters(cfg, active=True).total,
                "train_flops_per_token": flops_per_token(cfg, args.seq_len), "val_loss": round(out["val_loss"], 4),
                "tokens_per_s": round(out["tokens"] / out["seconds"]),
            }
    if args.json:
        print(json.dumps(result))
        return
    from llmlab.cli.common import print_table

    keys = ["params", "active_params", "train_flops_per_token", "val_loss", "tokens_per_s"]
    print_table([(k, result["dense"][k], result["moe"][k]) for k in keys], ("", "dense", "moe"))


if __name__ == "__main__":
    main()
