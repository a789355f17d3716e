"""`llmlab export-gguf DIR --out FILE.gguf`: llmlab checkpoint -> one GGUF file for llama.cpp and Ollama."""

from __future__ import annotations

import click

from llmlab.cli.common import OutputPath, emit, json_option

QUANTIZE_CHOICES = ("f32", "f16", "q8_0")  # llmlab.interop.gguf_export.QUANTIZE_CHOICES, without importing gguf


@click.command("export-gguf")
@click.argument("ckpt", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--out", "out", required=True, type=OutputPath("file"),
              help="GGUF file to create (must not exist).")
@click.option("--quantize", type=click.Choice(QUANTIZE_CHOICES), default="f32", show_default=True,
              help="Weight matrices in f32, f16 or llama.cpp's q8_0 (norms and biases stay f32).")
@json_option
def command(ckpt: str, out: str, quantize: str, as_json: bool) -> None:
    """Write the llmlab checkpoint DIR as one GGUF file (llama.cpp's gpt2 architecture for GPT-2
    family models, llama for Llama and Mistral without a window) with its byte-level BPE tokenizer,
    so `llama-cli -m FILE.gguf` and Ollama (`FROM ./FILE.gguf` in a Modelfile) run it. A model
    GGUF cannot express (a sliding window, biases on a Llama-family model) is refused."""
    from llmlab.interop.gguf_export import export_gguf

    result = export_gguf(ckpt, out, quantize)
    emit(result.to_dict(), as_json, _show)


def _show(result: dict) -> None:
    click.echo(f"exported {result['architecture']} GGUF ({result['quantize']}, {result['tensors']} tensors, "
               f"{result['vocab']} tokens, {result['bytes'] / 1e6:.2f} MB) -> {result['out']}")
    for note in result["notes"]:
        click.echo(f"note: {note}")
