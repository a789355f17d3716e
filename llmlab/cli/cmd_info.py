"""`llmlab info DIR|PRESET`: the config, parameter counts and FLOPs per token of a checkpoint or preset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from llmlab.cli.common import emit, json_option, print_table
from llmlab.units import human_count as human




def describe(cfg, seq_len: int | None = None) -> dict[str, Any]:
    """Parameter counts and FLOPs per token of a ModelConfig (accounting only; no weights built)."""
    from llmlab.model.accounting import count_parameters, flops_per_token, kaplan_flops_per_token

    n = count_parameters(cfg)
    T = seq_len or cfg.context_length
    return {
        "parameters": {"total": n.total, "non_embedding": n.non_embedding, "embedding": n.embedding},
        "flops_per_token": {
            "seq_len": T,
            "training": flops_per_token(cfg, T, training=True),
            "forward": flops_per_token(cfg, T, training=False),
            "kaplan_6n": kaplan_flops_per_token(cfg),
        },
    }


def resolve(target: str) -> tuple[str, Any, dict[str, Any]]:
    """(kind, ModelConfig, extra facts) for a checkpoint directory or a preset name."""
    from llmlab.checkpoint import load_config
    from llmlab.config import GPT3_PAPER_PARAMS, PRESETS, preset
    from llmlab.errors import ConfigError

    path = Path(target)
    if path.exists():
        cfg = load_config(path)
        return "checkpoint", cfg, _checkpoint_facts(path, cfg)
    if target in PRESETS:
        extra = {"paper_parameters": GPT3_PAPER_PARAMS[target]} if target in GPT3_PAPER_PARAMS else {}
        return "preset", preset(target), extra
    raise ConfigError(
        f"{target!r} is neither a checkpoint directory nor a preset; presets: {', '.join(PRESETS)}"
    )


def _checkpoint_facts(path: Path, cfg) -> dict[str, Any]:
    """What the files say beyond config.json: stored dtype and size, tokenizer vocabulary. The
    weights' header is checked against the config, so the counts shown are the weights' own."""
    from llmlab.checkpoint import WEIGHTS_FILE, check_weights_header, load_quantization

    facts: dict[str, Any] = {"dtype": None, "weights_bytes": None, "tokenizer_vocab_size": None,
                             "quantization": load_quantization(path)}  # llmlab quantize's record, or None
    weights = path / WEIGHTS_FILE
    if weights.is_file():
        facts["weights_bytes"] = weights.stat().st_size
        facts["dtype"] = check_weights_header(path, cfg)
    if (path / "tokenizer.json").is_file():
        from llmlab.tokenizer import Tokenizer

        facts["tokenizer_vocab_size"] = Tokenizer.from_pretrained(path).vocab_size
    return facts


@click.command("info")
@click.argument("target", metavar="DIR|PRESET")
@click.option("--seq-len", type=click.IntRange(min=1), default=None,
              help="Sequence length for the attention FLOPs (default: the context length).")
@json_option
def command(target: str, seq_len: int | None, as_json: bool) -> None:
    """Show the config, parameter counts (total and non-embedding) and training FLOPs per token of
    a checkpoint directory or a named preset (see `llmlab presets`), e.g. `llmlab info gpt3-175b`.

    Training FLOPs per token are 6N (N = non-embedding parameters plus a tied head's matmul) plus
    attention's 12 * n_layer * seq_len * d_model; forward is a third of that."""
    kind, cfg, extra = resolve(target)
    result = {"source": target, "kind": kind, "config": cfg.to_dict(), **describe(cfg, seq_len), **extra}
    emit(result, as_json, _show)


def _show(r: dict[str, Any]) -> None:
    cfg = r["config"]
    print_table(((k, v) for k, v in cfg.items()), ("field", "value"), title=f"{r['kind']} {r['source']}")
    p, f = r["parameters"], r["flops_per_token"]
    rows = [
        ("parameters (total)", f"{p['total']:,} ({human(p['total'])})"),
        ("parameters (non-embedding)", f"{p['non_embedding']:,} ({human(p['non_embedding'])})"),
        ("parameters (embedding)", f"{p['embedding']:,} ({human(p['embedding'])})"),
        (f"training FLOPs/token (seq {f['seq_len']})", f"{f['training']:.4g} ({human(f['training'])})"),
        (f"forward FLOPs/token (seq {f['seq_len']})", f"{f['forward']:.4g} ({human(f['forward'])})"),
        ("Kaplan 6N FLOPs/token", f"{f['kaplan_6n']:.4g} ({human(f['kaplan_6n'])})"),
    ]
    if "paper_parameters" in r:
        diff = 100 * (p["total"] / r["paper_parameters"] - 1)
        rows.append(("GPT-3 paper parameters", f"{human(r['paper_parameters'])} ({diff:+.1f}%)"))
    if r["kind"] == "checkpoint":
        rows.append(("stored dtype", r.get("dtype") or "no weights file"))
        if r.get("weights_bytes") is not None:
            rows.append(("weights file", f"{r['weights_bytes'] / 2**20:.1f} MiB"))
        q = r.get("quantization")
        if q:
            rows.append(("quantization", q["mode"] + (f", groups of {q['group_size']}" if q.get("group_size") else "")))
        rows.append(("tokenizer vocabulary", r.get("tokenizer_vocab_size") or "no tokenizer"))
    print_table(rows, ("quantity", "value"))
