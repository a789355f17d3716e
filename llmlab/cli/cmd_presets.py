"""`llmlab presets`: the model zoo, one row per named preset."""

from __future__ import annotations

import click

from llmlab.cli.common import emit, json_option


@click.command("presets")
@json_option
def command(as_json: bool) -> None:
    """List the named model presets (use a name with `llmlab info NAME`, or in a training config):
    shape, parameter counts and training FLOPs per token at the full context."""
    from llmlab.cli.cmd_info import describe
    from llmlab.config import GPT3_PAPER_PARAMS, PRESETS, preset

    rows = []
    for name in PRESETS:
        cfg = preset(name)
        d = describe(cfg)
        row = {"name": name, "config": cfg.to_dict(), **d}
        if name in GPT3_PAPER_PARAMS:
            row["paper_parameters"] = GPT3_PAPER_PARAMS[name]
        rows.append(row)
    emit({"presets": rows}, as_json, _show)


def _show(result: dict) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from llmlab.units import human_count as human

    columns = ("preset", "family", "layers", "d_model", "heads/kv", "d_ff", "context", "vocab", "params",
               "non-emb", "train FLOPs/tok")
    table = Table(title="model presets", box=box.SIMPLE_HEAD)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i < 2 else "right", no_wrap=True)
    for r in result["presets"]:
        c, p = r["config"], r["parameters"]
        table.add_row(
            r["name"], c["family"], str(c["n_layer"]), str(c["d_model"]), f"{c['n_head']}/{c['n_kv_head']}",
            str(c["d_ff"]), str(c["context_length"]), str(c["vocab_size"]), human(p["total"]),
            human(p["non_embedding"]), human(r["flops_per_token"]["training"]),
        )
    console = Console()
    # Pipes get rich's default 80 columns, too narrow for this table; never squeeze it below its natural width.
    console.width = max(console.width, 120)
    console.print(table)
