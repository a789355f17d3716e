"""Pieces shared by the model-dependent `llmlab eval` subcommands: loading a checkpoint with one-line
errors, and the options they all take."""

from __future__ import annotations

from typing import Any

import click

from llmlab.errors import CheckpointError

device_option = click.option(
    "--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N, mps, or auto (cuda if available)."
)
threads_option = click.option(
    "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)."
)


def load_model(model_dir: str, device: str = "cpu", threads: int | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a checkpoint directory in eval mode; a tokenizer is required."""
    import torch

    import llmlab
    from llmlab.checkpoint import resolve_device

    if threads:
        torch.set_num_threads(threads)
    model, tokenizer = llmlab.load(model_dir, device=resolve_device(device))
    if tokenizer is None:
        raise CheckpointError(f"{model_dir} has no tokenizer.json; evaluation needs one")
    return model.eval(), tokenizer


def command_line(name: str, **options: Any) -> str:
    """The shell command that reproduces a result (for reports): `llmlab eval NAME --opt value ...`."""
    import shlex

    parts = ["llmlab", "eval", name]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            for v in value:
                parts += [flag, shlex.quote(str(v))]
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def trained_seq_len(model_dir: str) -> int | None:
    """The sequence length a checkpoint was trained on (its train_config.json), if recorded.

    A model trained on shorter windows than its context length has never seen the later
    positions; perplexity windows longer than its training length measure extrapolation.
    """
    import json
    from pathlib import Path

    cfg = Path(model_dir) / "train_config.json"
    try:
        value = json.loads(cfg.read_text(encoding="utf-8")).get("seq_len") if cfg.is_file() else None
    except (OSError, ValueError):
        return None
    return int(value) if isinstance(value, int) and value > 1 else None
