"""KV-cache memory of sliding-window vs full attention when generating 4x the window.

The same model shape twice (preset `base` by default: 10 layers, d_model 512, 8 query / 4 key-value
heads; random weights, seed 0 — memory does not depend on what the weights learned), once with full
attention and once with `sliding_window` W on every layer. Each generates `--factor` x W new tokens
(greedy, no stopping) after a 16-token prompt, at batch `--batch`, through llmlab's Engine, in its own
subprocess so that peak RSS is that mode's alone. Reported per mode: the KV cache's bytes at the
last step (`Engine.cache_bytes`: full attention holds every column of prompt + new tokens, the
rolling buffers W slots per layer) and the process's peak resident memory (ru_maxrss, which includes PyTorch
itself and the weights, the same for both).

    python bench/sliding_window_memory.py            # a table
    python bench/sliding_window_memory.py --json     # one JSON object
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def run_one(preset: str, window: int | None, new_tokens: int, batch: int, threads: int) -> dict:
    import torch

    from llmlab.config import preset as make
    from llmlab.infer import Engine
    from llmlab.model import TransformerLM

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    prompt = list(range(1, 17))
    model = TransformerLM(make(preset, context_length=len(prompt) + new_tokens, sliding_window=window)).eval()
    engine = Engine(model, None, max_batch_size=batch)
    for _ in range(batch):
        engine.add_request(prompt, temperature=0, max_new_tokens=new_tokens, ignore_eos=True)
    last, peak_cache, t0 = 0, 0, time.perf_counter()
    while engine.has_unfinished():
        engine.step()
        if engine.cache_bytes:
            last = engine.cache_bytes
        peak_cache = max(peak_cache, engine.cache_bytes)
    return {
        "mode": "full" if window is None else f"sliding {window}",
        "new_tokens": new_tokens, "batch": batch, "cache_bytes_last": last, "cache_bytes_peak": peak_cache,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="base")
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--factor", type=int, default=4, help="generate this many windows of new tokens")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one mode in this process
    args = ap.parse_args()
    new_tokens = args.factor * args.window
    if args.one is not None:
        window = None if args.one == "full" else int(args.one)
        print(json.dumps(run_one(args.preset, window, new_tokens, args.batch, args.threads)))
        return
    rows = []
    for mode in ("full", str(args.window)):
        cmd = [sys.executable, __file__, "--one", mode, "--preset", args.preset, "--window", str(args.window),
               "--factor", str(args.factor), "--batch", str(args.batch), "--threads", str(args.threads)]
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    full, sliding = rows
    result = {
        "preset": args.preset, "window": args.window, "new_tokens": new_tokens, "batch": args.batch, "rows": rows,
        "cache_ratio": full["cache_bytes_last"] / sliding["cache_bytes_last"],
        "peak_rss_saved_bytes": full["peak_rss_bytes"] - sliding["peak_rss_bytes"],
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"preset {args.preset}, window {args.window}, {new_tokens} new tokens after a 16-token prompt, batch {args.batch}")
    print(f"{'mode':<14}{'KV cache at end':>18}{'peak RSS':>14}{'seconds':>10}")
    for r in rows:
        print(f"{r['mode']:<14}{r['cache_bytes_last'] / 2**20:>15.1f} MiB{r['peak_rss_bytes'] / 2**20:>10.0f} MiB"
              f"{r['seconds']:>10.1f}")
    print(f"KV cache: {result['cache_ratio']:.1f}x smaller with the window; "
          f"peak RSS {result['peak_rss_saved_bytes'] / 2**20:.0f} MiB lower")


if __name__ == "__main__":
    main()
