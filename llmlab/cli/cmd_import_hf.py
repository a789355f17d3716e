"""`llmlab import-hf SRC --out DIR`: a local Hugging Face GPT-2 / Llama-family folder -> llmlab checkpoint."""

from __future__ import annotations

import click

from llmlab.cli.common import OutputPath, emit, json_option

DTYPE_CHOICES = ("auto", "float32", "float16", "bfloat16")


@click.command("import-hf")
@click.argument("src", type=click.Path(file_okay=False))
@click.option("--out", "out", required=True, type=OutputPath("dir", replaced=True),
              help="Checkpoint directory to create (must not exist, or be empty).")
@click.option("--trust-pickle", is_flag=True,
              help="Also read PyTorch pickle weights (pytorch_model.bin), with torch.load(weights_only=True). "
                   "Pickles can run code: only for files from a source you trust.")
@click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="auto", show_default=True,
              help="Weight dtype to store; auto keeps the folder's.")
@json_option
def command(src: str, out: str, trust_pickle: bool, dtype: str, as_json: bool) -> None:
    """Convert the Hugging Face model folder SRC (GPT2LMHeadModel, LlamaForCausalLM, Mistral, Qwen2;
    config.json + model.safetensors or sharded safetensors, tokenizer files) into an llmlab
    checkpoint. Nothing is downloaded: SRC is a local folder, e.g. one saved by save_pretrained."""
    from llmlab.interop import import_hf

    result = import_hf(src, out, trust_pickle=trust_pickle, dtype=None if dtype == "auto" else dtype)
    emit(result.to_dict(), as_json, _show)


def _show(result: dict) -> None:
    cfg = result["config"]
    click.echo(
        f"imported {result['architecture']} ({result['parameters'] / 1e6:.2f}M parameters, {result['dtype']}, "
        f"{cfg['n_layer']} layers, d_model {cfg['d_model']}, vocab {cfg['vocab_size']}) -> {result['out']}"
    )
    click.echo(f"tokenizer: {'converted' if result['tokenizer'] else 'none'}")
    for note in result["notes"]:
        click.echo(f"note: {note}")
