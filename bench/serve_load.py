"""Load on `llmlab serve`: streaming clients at concurrency 1, 4, 16 and 64, then a soak for memory.

Starts the real server (`llmlab serve`, a subprocess on 127.0.0.1 and a free port; nothing else is
ever contacted) on a checkpoint (--model DIR), or on a preset with random weights and the
tokenizer of --tokenizer DIR (--preset gpt2-12m: the issue's 12M model). At each concurrency c,
c clients send streaming /v1/completions requests back to back (max(8, 2c) requests in all,
--max-tokens each, ignore_eos so every request generates exactly that many, seeded sampling at
temperature 0.8). Measured from the client's side:

- aggregate output tokens/s: tokens received at that level / the level's wall time;
- time to first token (request sent -> first token's chunk) and inter-token latency (between
  consecutive chunks of one stream): p50 and p95 over all requests / gaps;
- errors: a status other than 200, or a stream without its finish_reason and `data: [DONE]`.

`batching_speedup_c16` is tokens/s at c16 over c1: what continuous batching buys. Then the soak:
--soak-requests (2,000) short requests at c16, reporting the server's resident memory (VmRSS)
before the soak (after the levels above) and at its end. Every level is bounded by --max-seconds; the soak too.

    python bench/serve_load.py --model runs/quickstart/checkpoint
    python bench/serve_load.py --preset gpt2-12m --tokenizer runs/quickstart/checkpoint --json

--json prints one JSON object with tokens_per_s_c1, tokens_per_s_c16, batching_speedup_c16,
ttft_p95_ms_c16, errors (the table then goes to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPTS = ["Once upon a time", "Mia had a small dog named", "Tom lives in Pinebrook. He works as",
           "The shop was clean and", "Sam has 3 apples. He buys 4 more.", "User: Where does Tom live?\nAssistant:"]
LEVELS = (1, 4, 16, 64)


# ---------------------------------------------------------------------------- the server
def make_preset_checkpoint(preset: str, tokenizer_dir: str, folder: Path) -> Path:
    """A checkpoint of `preset` with random weights (seed 0) and the tokenizer of `tokenizer_dir`."""
    import torch

    from llmlab.checkpoint import save_checkpoint
    from llmlab.config import preset as preset_config
    from llmlab.model import TransformerLM
    from llmlab.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = preset_config(preset)
    if tokenizer.vocab_size > config.vocab_size:
        raise SystemExit(f"the tokenizer has {tokenizer.vocab_size} tokens, more than {preset}'s {config.vocab_size}")
    return save_checkpoint(folder / preset, TransformerLM(config), tokenizer)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------- one streaming client
async def stream_request(port: int, body: dict) -> dict:
    """POST one streaming completion over a raw connection (the lightest client there is, so the
    clients take little CPU from the server); times every chunk."""
    payload = json.dumps(body).encode()
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload))
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        if status != 200:
            return {"ok": False, "status": status}
        times, finished, done, usage = [], False, False, None
        async for raw in reader:  # chunked framing lines are skipped: only "data: " lines matter
            line = raw.strip()
            if not line.startswith(b"data: "):
                continue
            if line == b"data: [DONE]":
                done = True
                break
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices", []):
                if choice.get("text"):
                    times.append(time.perf_counter())
                if choice.get("finish_reason"):
                    finished = True
            usage = chunk.get("usage") or usage
        return {"ok": finished and done, "status": status, "t0": t0, "times": times,
                "tokens": usage["completion_tokens"] if usage else len(times)}
    finally:
        writer.close()


async def run_level(port: int, concurrency: int, requests: int, max_tokens: int, max_seconds: float,
                    seed0: int = 0) -> dict:
    """`concurrency` clients sending `requests` requests back to back (stopping early at max_seconds)."""
    results: list[dict] = []
    counter = iter(range(requests))
    deadline = time.perf_counter() + max_seconds

    async def client() -> None:
        for i in counter:
            if time.perf_counter() > deadline:
                return
            body = {"model": "bench", "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens, "stream": True,
                    "stream_options": {"include_usage": True}, "temperature": 0.8, "seed": seed0 + i,
                    "ignore_eos": True}
            try:
                results.append(await stream_request(port, body))
            except (OSError, ValueError, IndexError) as exc:
                results.append({"ok": False, "status": None, "error": repr(exc)})

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    good = [r for r in results if r["ok"]]
    ttft = [(r["times"][0] - r["t0"]) * 1000 for r in good if r["times"]]
    itl = [(b - a) * 1000 for r in good for a, b in zip(r["times"], r["times"][1:])]
    tokens = sum(r["tokens"] for r in good)
    return {"concurrency": concurrency, "requests": len(results), "tokens": tokens, "seconds": wall,
            "tokens_per_s": tokens / wall if wall > 0 else 0.0, "ttft_p50_ms": pct(ttft, 50),
            "ttft_p95_ms": pct(ttft, 95), "itl_p50_ms": pct(itl, 50), "itl_p95_ms": pct(itl, 95),
            "errors": len(results) - len(good)}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


# ---------------------------------------------------------------------------- main
def main(argv=None) -> int:
    from llmlab.serve.runner import spawn

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="checkpoint directory to serve")
    source.add_argument("--preset", help="serve this preset with random weights (with --tokenizer)")
    ap.add_argument("--tokenizer", default="runs/quickstart/checkpoint", help="tokenizer folder for --preset")
    ap.add_argument("--max-tokens", type=int, default=64, help="tokens per request")
    ap.add_argument("--max-batch", type=int, default=64, help="the server's --max-batch")
    ap.add_argument("--threads", type=int, default=1,
                    help="the server's torch threads (default 1: the clients get the other core of two)")
    ap.add_argument("--max-seconds", type=float, default=120, help="time limit of each level and of the soak")
    ap.add_argument("--soak-requests", type=int, default=2000, help="requests of the memory soak (0: skip it)")
    ap.add_argument("--soak-max-tokens", type=int, default=16)
    ap.add_argument("--json", action="store_true", help="print one JSON object (the table goes to stderr)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        if args.preset:
            model_dir, what = make_preset_checkpoint(args.preset, args.tokenizer, Path(tmp)), f"{args.preset} (random weights)"
        else:
            model_dir, what = Path(args.model), args.model
        proc, url = spawn(model_dir, "--host", "127.0.0.1", "--threads", str(args.threads), "--max-batch",
                          str(args.max_batch), "--max-queue", "4096", "--served-model-name", "bench",
                          "--log-level", "warning")
        port = int(url.rsplit(":", 1)[1])
        try:
            asyncio.run(run_level(port, 4, 8, 8, args.max_seconds))  # warm-up: first allocations, code paths
            levels = [asyncio.run(run_level(port, c, max(8, 2 * c), args.max_tokens, args.max_seconds))
                      for c in LEVELS]
            soak = None
            if args.soak_requests:
                before = rss_mb(proc.pid)
                s = asyncio.run(run_level(port, 16, args.soak_requests, args.soak_max_tokens, args.max_seconds, 10_000))
                soak = {"requests": s["requests"], "errors": s["errors"], "rss_mb_start": before,
                        "rss_mb_end": rss_mb(proc.pid), "seconds": s["seconds"]}
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()

    by_c = {r["concurrency"]: r for r in levels}
    errors = sum(r["errors"] for r in levels) + (soak["errors"] if soak else 0)
    result = {
        "tokens_per_s_c1": round(by_c[1]["tokens_per_s"], 1),
        "tokens_per_s_c16": round(by_c[16]["tokens_per_s"], 1),
        "batching_speedup_c16": round(by_c[16]["tokens_per_s"] / by_c[1]["tokens_per_s"], 2),
        "ttft_p95_ms_c16": round(by_c[16]["ttft_p95_ms"], 1),
        "errors": errors,
    }
    show(levels, soak, result, what, args, err=args.json)
    if args.json:
        print(json.dumps(result))
    return 0


def show(levels, soak, result, what, args, err: bool) -> None:
    from llmlab.cli.common import print_table

    rows = [[r["concurrency"], r["requests"], r["tokens"], f"{r['tokens_per_s']:.0f}"]
            + [f"{r[k]:.1f}" for k in ("ttft_p50_ms", "ttft_p95_ms", "itl_p50_ms", "itl_p95_ms")] + [r["errors"]]
            for r in levels]
    print_table(rows, ["clients", "requests", "tokens", "tokens/s", "TTFT p50 ms", "TTFT p95 ms", "ITL p50 ms",
                       "ITL p95 ms", "errors"],
                title=f"llmlab serve, {what}: {args.max_tokens} tokens a request, --max-batch {args.max_batch}, "
                      f"{args.threads} server thread(s)", err=err)
    out = sys.stderr if err else sys.stdout
    print(f"batching speedup c16/c1: {result['batching_speedup_c16']}x", file=out)
    if soak:
        print(f"soak: {soak['requests']} requests ({soak['errors']} errors) in {soak['seconds']:.0f}s; server resident "
              f"memory {soak['rss_mb_start']:.0f} MB before -> {soak['rss_mb_end']:.0f} MB "
              f"({soak['rss_mb_end'] - soak['rss_mb_start']:+.1f} MB)", file=out)


if __name__ == "__main__":
    sys.exit(main())
