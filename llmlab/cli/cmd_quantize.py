"""`llmlab quantize DIR --out DST`: save a checkpoint with int8 or int4 linear layers."""

from __future__ import annotations

import click

from llmlab.cli.common import OutputPath, emit, json_option


@click.command("quantize")
@click.argument("ckpt", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--out", "out", required=True, type=OutputPath("dir"), help="Checkpoint folder to create.")
@click.option("--mode", type=click.Choice(["int8", "int4"]), default="int8", show_default=True,
              help="int8: one scale per output row; int4: one scale per group of --group-size inputs.")
@click.option("--group-size", type=int, default=None, help="int4 only: inputs per scale (default 32).")
@json_option
def command(ckpt: str, out: str, mode: str, group_size: int | None, as_json: bool) -> None:
    """Quantise the linear layers of checkpoint DIR and save the result (safetensors; the config
    records the quantisation, so `llmlab.load` and every inference command load it back quantised).

    \b
    Example:
      llmlab quantize runs/tiny/checkpoint --out runs/tiny/int8
      llmlab generate --model runs/tiny/int8 --prompt "Once upon a time"
    """
    from pathlib import Path

    from llmlab.checkpoint import WEIGHTS_FILE, load, save_checkpoint
    from llmlab.errors import ConfigError
    from llmlab.infer.quantize import quantize_model

    if group_size is not None and mode != "int4":
        raise ConfigError("--group-size applies to --mode int4 only")
    model, tokenizer = load(ckpt, "cpu")
    quantize_model(model, mode, group_size)
    save_checkpoint(out, model, tokenizer)
    before, after = (Path(ckpt) / WEIGHTS_FILE).stat().st_size, (Path(out) / WEIGHTS_FILE).stat().st_size
    result = {"out": out, **model.quantization, "bytes_before": before, "bytes_after": after}
    emit(result, as_json, lambda r: click.echo(
        f"{mode} checkpoint -> {out} (weights {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB)"))
