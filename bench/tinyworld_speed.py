"""tinyworld: generation speed, peak memory and diversity of the generated text.

Generates a 10M-token dataset (and a 1M-token one, to show memory stays flat), each in a fresh
process so its peak RSS is its own, then measures the stories of the 10M-token pre-training corpus:
distinct-1..4, distinct sentence templates and the duplicate-sentence rate (definitions in
llmlab/data/tinyworld/stats.py). With --bpe it also trains a 4096-token byte-level BPE on 1M
tokens of the corpus and reports BPE tokens per tinyworld token.

    python bench/tinyworld_speed.py            # a table
    python bench/tinyworld_speed.py --json     # one JSON object
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import json, resource, sys
from llmlab.data.tinyworld import generate_dataset
m = generate_dataset(sys.argv[1], tokens=int(sys.argv[2]), seed=0, progress=False,
                     workers=None if sys.argv[3] == "all" else int(sys.argv[3]))
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest worker
print(json.dumps({**m["run"], "pretrain_tokens": m["pretrain"]["train_tokens"] + m["pretrain"]["val_tokens"],
                  "main_rss_mb": self_kb / 1024, "worker_rss_mb": children_kb / 1024}))
"""


def generate(out: Path, tokens: int, workers: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(out), str(tokens), workers],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def diversity(folder: Path) -> dict:
    from llmlab.data.tinyworld import World
    from llmlab.data.tinyworld.stats import DiversityCounter

    world = World(seed=0)
    counter, sample, everything = DiversityCounter(world), DiversityCounter(world), DiversityCounter(world, max_n=1)
    stories = 0
    for split in ("train", "val"):
        with open(folder / "pretrain" / f"{split}.jsonl", encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                everything.add(rec["text"])
                if rec["kind"] == "story":
                    counter.add(rec["text"])
                    if stories < 1000:  # distinct-n depends on corpus size: also report it on a fixed sample
                        sample.add(rec["text"])
                    stories += 1
    small = sample.result()
    return {"stories": stories, **counter.result(), "vocabulary_all_kinds": everything.result()["vocabulary"],
            **{f"sample_distinct_{n}": small[f"distinct_{n}"] for n in (1, 2, 3, 4)}}


def bpe_ratio(folder: Path, tokens: int = 1_000_000) -> dict:
    from llmlab.data.tinyworld import count_tokens
    from llmlab.tokenizer import Tokenizer

    texts, n = [], 0
    with open(folder / "pretrain" / "train.jsonl", encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line)["text"]
            texts.append(text)
            n += count_tokens(text)
            if n >= tokens:
                break
    tok = Tokenizer.train(texts, vocab_size=4096, show_progress=False)
    bpe = sum(len(ids) for ids in tok.encode_batch(texts, add_special_tokens=False))
    return {"bpe_vocab": 4096, "bpe_tokens_per_tinyworld_token": bpe / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from llmlab.data.tinyworld.tokens import parse_token_count

    ap.add_argument("--tokens", type=parse_token_count, default=10_000_000, help="large corpus size, e.g. 2M (default 10M)")
    ap.add_argument("--small", type=parse_token_count, default=1_000_000,
                    help="small corpus size for the memory comparison (default 1M)")
    ap.add_argument("--workers", default="all", help="worker processes ('all' = every available core)")
    ap.add_argument("--bpe", action="store_true", help="also measure BPE tokens per tinyworld token")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        small = generate(Path(tmp) / "small", args.small, args.workers)
        large = generate(Path(tmp) / "large", args.tokens, args.workers)
        t0 = time.perf_counter()
        div = diversity(Path(tmp) / "large")
        div_s = time.perf_counter() - t0
        extra = bpe_ratio(Path(tmp) / "large") if args.bpe else {}
    result = {
        "tokens": large["pretrain_tokens"], "workers": large["workers"],
        "pretrain_seconds": large["pretrain_s"], "pretrain_tokens_per_s": large["pretrain_tokens_per_s"],
        "total_seconds": large["elapsed_s"],
        "small_tokens": small["pretrain_tokens"], "small_main_rss_mb": round(small["main_rss_mb"], 1),
        "small_worker_rss_mb": round(small["worker_rss_mb"], 1),
        "main_rss_mb": round(large["main_rss_mb"], 1), "worker_rss_mb": round(large["worker_rss_mb"], 1),
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in div.items()},
        "diversity_seconds": round(div_s, 1), **extra,
    }
    if args.json:
        print(json.dumps(result))
        return
    from llmlab.cli.common import print_table

    rows = [
        ("pre-training tokens generated", result["tokens"]),
        ("worker processes", result["workers"]),
        ("pre-training time (s)", result["pretrain_seconds"]),
        ("pre-training rate (tokens/s)", result["pretrain_tokens_per_s"]),
        ("whole dataset time (s)", result["total_seconds"]),
        (f"peak RSS main / worker at {result['small_tokens']:,} tokens (MB)",
         f"{result['small_main_rss_mb']} / {result['small_worker_rss_mb']}"),
        (f"peak RSS main / worker at {result['tokens']:,} tokens (MB)",
         f"{result['main_rss_mb']} / {result['worker_rss_mb']}"),
        ("stories in the corpus", result["stories"]),
        *[(f"distinct-{n}, all stories / first 1,000 stories", f"{result[f'distinct_{n}']:.4f} / "
                                                                f"{result[f'sample_distinct_{n}']:.4f}")
          for n in (1, 2, 3, 4)],
        ("sentences in stories", result["sentences"]),
        ("distinct sentence templates", result["sentence_templates"]),
        ("duplicate-sentence rate", result["duplicate_sentence_rate"]),
        ("vocabulary: stories / all pre-training text", f"{result['vocabulary']} / {result['vocabulary_all_kinds']}"),
    ]
    if extra:
        rows.append(("BPE-4096 tokens per tinyworld token", round(extra["bpe_tokens_per_tinyworld_token"], 3)))
    print_table(rows, ["tinyworld", "value"], title="tinyworld generation benchmark")


if __name__ == "__main__":
    main()
