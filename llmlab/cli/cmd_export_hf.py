"""`llmlab export-hf DIR --out DST`: llmlab checkpoint -> a Hugging Face folder `transformers` loads."""

from __future__ import annotations

import click

from llmlab.cli.common import OutputPath, emit, json_option


@click.command("export-hf")
@click.argument("ckpt", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--out", "out", required=True, type=OutputPath("dir", replaced=True),
              help="Folder to create (must not exist, or be empty).")
@json_option
def command(ckpt: str, out: str, as_json: bool) -> None:
    """Write the llmlab checkpoint DIR as a Hugging Face model folder (config.json, model.safetensors,
    generation_config.json, tokenizer files) that transformers.AutoModelForCausalLM.from_pretrained
    loads: GPT2LMHeadModel for GPT-2 family configs, LlamaForCausalLM for the Llama family. A config
    the target cannot represent exactly is refused."""
    from llmlab.interop import export_hf

    result = export_hf(ckpt, out)
    emit(result.to_dict(), as_json, _show)


def _show(result: dict) -> None:
    click.echo(
        f"exported {result['architecture']} ({result['parameters'] / 1e6:.2f}M parameters, {result['dtype']}) "
        f"-> {result['out']}"
    )
    click.echo(f"tokenizer: {'copied' if result['tokenizer'] else 'none'}")
    for note in result["notes"]:
        click.echo(f"note: {note}")
