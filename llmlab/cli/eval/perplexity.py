"""`llmlab eval perplexity`: strided sliding-window perplexity of a text file or dataset."""

from __future__ import annotations

from typing import Any

import click

from llmlab.cli.common import emit, json_option, load_checkpoint, model_option, print_table, quantize_option, threads_option
from llmlab.cli.eval import device_option


@click.command("perplexity")
@model_option
@click.option("--input", "inputs", required=True, multiple=True, metavar="FILE",
              help="Text to score: a .txt file (one document), .jsonl (one document per line, its --field), "
                   ".parquet, a directory, a glob, or a saved Hugging Face dataset folder. Repeatable.")
@click.option("--stride", type=int, default=None,
              help="Tokens each window moves; the tokens before them in the window are context only. "
                   "Smaller is more accurate and slower. Default: the window (windows share one token).")
@click.option("--window", type=int, default=None,
              help="Tokens per forward pass (at most the model's context length). Default: the sequence length "
                   "the checkpoint was trained on (train_config.json), else the context length.")
@click.option("--field", default="text", show_default=True, help="JSONL/Parquet field holding the text.")
@click.option("--max-docs", type=int, default=None, help="Score only the first N documents.")
@click.option("--no-start-token", is_flag=True,
              help="Do not condition each document on the start token (Hugging Face's guide); its first "
                   "token is then not scored.")
@device_option
@quantize_option
@threads_option
@json_option
def command(model_dir: str, inputs: tuple[str, ...], stride: int | None, window: int | None, field: str,
            max_docs: int | None, no_start_token: bool, device: str, threads: int | None, as_json: bool) -> None:
    """Perplexity, bits per byte and word perplexity of text under a model.

    Documents are scored one by one in sliding windows (see docs/evaluation.md); bits per byte
    and word perplexity follow lm-evaluation-harness's definitions.
    """
    from llmlab.errors import ConfigError
    from llmlab.eval.perplexity import calculate_perplexity, read_documents, trained_window

    if max_docs is not None and max_docs < 1:
        raise ConfigError(f"--max-docs must be at least 1, got {max_docs}")
    docs = read_documents(list(inputs), field=field, max_documents=max_docs)
    model, tokenizer = load_checkpoint(model_dir, device, threads=threads)
    if window is None:
        window = trained_window(model, model_dir)
    res = calculate_perplexity(model, tokenizer, docs, stride, window=window, add_start_token=not no_start_token)
    # The promised keys first (perplexity, bits_per_byte, tokens), then everything else measured.
    out: dict[str, Any] = {"perplexity": res.perplexity, "bits_per_byte": res.bits_per_byte, "tokens": res.tokens}
    out.update({k: v for k, v in res.to_dict().items() if k not in out}, model=model_dir, input=list(inputs))

    def show(r: dict[str, Any]) -> None:
        rows = [["perplexity (per token)", r["perplexity"]], ["bits per byte", r["bits_per_byte"]],
                ["word perplexity", r["word_perplexity"]], ["byte perplexity", r["byte_perplexity"]],
                ["mean NLL (nats/token)", r["nll"]], ["scored tokens", r["tokens"]], ["bytes", r["bytes"]],
                ["words", r["words"]], ["documents", r["documents"]],
                ["window / stride", f"{r['window']} / {r['stride']}"]]
        if r["skipped_documents"]:
            rows.append(["skipped (under 2 tokens)", r["skipped_documents"]])
        print_table(rows, ["metric", "value"], title="perplexity")
        click.echo(f"input: {', '.join(inputs)}; model: {model_dir}")

    emit(out, as_json, show)
