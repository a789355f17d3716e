"""The quickstart: from nothing to a small language model that writes stories, on a laptop CPU.

1. generate a tinyworld corpus (no download),
2. train a byte-level BPE tokenizer on it and tokenise it into shards,
3. pre-train a small model for a fixed number of steps,
4. report validation perplexity and print a few generated stories.

Re-running continues where it stopped (each stage is skipped once done, training resumes).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from llmlab.train.config import TrainConfig

STORY_PROMPTS = ("Once upon a time", "One sunny morning,", "Mia")


@dataclass
class QuickstartConfig:
    out: str = "runs/quickstart"
    tokens: str = "4M"
    vocab_size: int = 2048
    preset: str = "tiny"
    max_steps: int = 1200
    batch_size: int = 8
    seq_len: int = 256  # the tiny preset's whole context: stories and chats need it
    lr: float = 4e-3
    seed: int = 0
    threads: int | None = None
    fresh: bool = False


def run_quickstart(cfg: QuickstartConfig, log: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    import torch

    from llmlab.data.prepare import prepare_dataset
    from llmlab.data.tinyworld import generate_dataset
    from llmlab.train.pretrain import run_pretraining

    start = time.perf_counter()
    out = Path(cfg.out)
    if cfg.fresh and out.exists():
        check_fresh(out)
        shutil.rmtree(out)
    world_dir, data_dir, run_dir = out / "tinyworld", out / "data", out / "run"
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    log(f"[1/4] tinyworld: generating about {cfg.tokens} tokens of stories, facts, dialogues ... -> {world_dir}")
    if not (world_dir / "manifest.json").is_file():
        generate_dataset(world_dir, tokens=cfg.tokens, seed=cfg.seed, progress=progress)

    log(f"[2/4] tokenizer: byte-level BPE with {cfg.vocab_size} tokens, then token shards -> {data_dir}")
    if not (data_dir / "manifest.json").is_file():
        prepare_dataset([str(world_dir)], data_dir, train_tokenizer=True, vocab_size=cfg.vocab_size, progress=progress)

    log(f"[3/4] pre-training the {cfg.preset!r} model for {cfg.max_steps} steps -> {run_dir}")
    train_cfg = TrainConfig(
        data=str(data_dir), out=str(run_dir), preset=cfg.preset, seq_len=cfg.seq_len, batch_size=cfg.batch_size,
        max_steps=cfg.max_steps, lr=cfg.lr, warmup_steps=30, eval_every=max(1, cfg.max_steps // 4),
        save_every=max(1, cfg.max_steps // 4), eval_windows=64, samples=1, seed=cfg.seed, threads=cfg.threads,
        progress=progress,
    )
    result = run_pretraining(train_cfg, resume="auto", log=log)  # continues the run if one is there

    log("[4/4] sampling stories from the trained model")
    stories = sample_stories(Path(result["checkpoint"]))
    result.update(stories=stories, total_seconds=time.perf_counter() - start, run_dir=str(run_dir))
    return result


QUICKSTART_PARTS = ("tinyworld", "data", "run")


def check_fresh(out: Path) -> None:
    """--fresh deletes `out`: only when it holds nothing but what the quickstart writes there (its three
    stages and their hidden temporaries), so a mistyped --out never deletes a user's folder."""
    from llmlab.errors import OutputError

    if not out.is_dir():
        raise OutputError(f"--out {out} is not a directory; --fresh deletes only a quickstart folder")
    foreign = [p.name for p in out.iterdir() if p.name.lstrip(".").split(".")[0] not in QUICKSTART_PARTS]
    if foreign:
        raise OutputError(f"--out {out} holds {foreign[0]!r}, which the quickstart did not write; --fresh deletes only "
                          "a quickstart folder (choose another --out)")


def sample_stories(checkpoint: Path, prompts=STORY_PROMPTS, max_new_tokens: int = 120) -> list[str]:
    import llmlab
    from llmlab.infer import generate_text

    model, tokenizer = llmlab.load(checkpoint)
    return [
        p + generate_text(model, tokenizer, p, max_new_tokens=max_new_tokens, temperature=0.7, top_p=0.9, seed=i)
        for i, p in enumerate(prompts)
    ]


def next_steps(result: dict[str, Any]) -> str:
    ckpt = result["checkpoint"]
    return "\n".join([
        "What to try next:",
        f"  llmlab generate --model {ckpt} --prompt 'Once upon a time' --stream",
        f"  llmlab chat --model {ckpt}",
        f"  llmlab eval perplexity --model {ckpt} --input {Path(result['run_dir']).parent / 'tinyworld' / 'pretrain' / 'val.jsonl'}",
        f"  llmlab info {ckpt}",
        "  llmlab quickstart --out runs/qs-mini --preset mini --max-steps 2000   (a bigger model, longer)",
    ])
