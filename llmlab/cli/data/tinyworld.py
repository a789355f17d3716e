"""`llmlab data tinyworld`: generate the tinyworld dataset into a folder."""

from __future__ import annotations

from typing import Any

import click

from llmlab.cli.common import OutputPath, emit, json_option, print_table


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    files = m["files"]
    return {
        "out_dir": m["run"]["out_dir"], "version": m["version"], "seed": m["seed"], "bias": m["bias"],
        "bias_group": m["bias_group"], "tokens_requested": m["tokens_requested"],
        "pretrain_train_tokens": m["pretrain"]["train_tokens"], "pretrain_val_tokens": m["pretrain"]["val_tokens"],
        "pretrain_documents": sum(m["pretrain"]["documents_by_kind"].values()),
        "sft_train": files["sft/train.jsonl"]["records"], "sft_val": files["sft/val.jsonl"]["records"],
        "preferences_train": files["preferences/train.jsonl"]["records"],
        "preferences_val": files["preferences/val.jsonl"]["records"],
        "kb_triples": m["world"]["kb_triples"], "people": m["world"]["people"],
        "elapsed_s": m["run"]["elapsed_s"], "pretrain_tokens_per_s": m["run"]["pretrain_tokens_per_s"],
        "workers": m["run"]["workers"], "manifest": m["run"]["out_dir"] + "/manifest.json",
    }


def _show(summary: dict[str, Any]) -> None:
    rows = [(k, v) for k, v in summary.items() if k != "out_dir"]
    print_table(rows, ["", "value"], title=f"tinyworld written to {summary['out_dir']}")


@click.command("tinyworld")
@click.option("--out", "out_dir", required=True, type=OutputPath("dir", replaced=True),
              help="Folder to write (replaced if it holds an earlier tinyworld dataset).")
@click.option("--tokens", default="2M", show_default=True,
              help="Approximate pre-training size in tokens (words and punctuation): 2000000, 200k, 2.5M, 50M.")
@click.option("--seed", type=int, default=0, show_default=True, help="World and text seed.")
@click.option("--bias", type=float, default=0.0, show_default=True,
              help="0..1: how much more often stories about the Quorran group turn sad and negative.")
@click.option("--val-fraction", type=float, default=0.05, show_default=True,
              help="Share of documents held out for validation (split by document, never shared).")
@click.option("--workers", type=int, default=None, help="Worker processes (default: all available cores).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
@json_option
def command(out_dir: str, tokens: str, seed: int, bias: float, val_fraction: float, workers: int | None,
              no_progress: bool, as_json: bool) -> None:
    """Generate tinyworld: pre-training text, SFT, preferences, knowledge base and probes.

    The same arguments always write byte-identical files. See docs/tinyworld.md.
    """
    from llmlab.data.tinyworld.writer import generate_dataset

    manifest = generate_dataset(out_dir, tokens=tokens, seed=seed, bias=bias, val_fraction=val_fraction,
                                progress=not no_progress, workers=workers)
    emit(_summary(manifest), as_json, _show)
