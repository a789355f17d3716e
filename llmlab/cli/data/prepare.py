"""`llmlab data prepare`: text -> token shards (+ a tokenizer, trained or given)."""

from __future__ import annotations

import click

from llmlab.cli.common import OutputPath, emit, json_option, print_table


@click.command("prepare")
@click.option("--input", "inputs", multiple=True, required=True,
              help="Text to tokenise: files (.txt/.md/.jsonl/.parquet), directories, globs, a saved HF dataset "
                   "folder (DIR:SPLIT picks a split of a DatasetDict; default train), or hf:NAME[:SPLIT] (hub, opt-in). Repeatable. A tinyworld output folder keeps its "
                   "own train/val split.")
@click.option("--out", "out_dir", required=True, type=OutputPath("dir", replaced=True),
              help="Output directory for the shards: new, empty, or an earlier prepared dataset with --overwrite "
                   "(anything else is refused, as is a directory that overlaps an --input or --val).")
@click.option("--overwrite", is_flag=True, help="Replace the prepared dataset already at --out.")
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(), default=None,
              help="Use this tokenizer (a checkpoint or tokenizer directory, or a tokenizer.json).")
@click.option("--train-tokenizer", is_flag=True, help="Train a new byte-level BPE tokenizer on the training text.")
@click.option("--vocab-size", type=int, default=4096, show_default=True, help="Vocabulary size for --train-tokenizer.")
@click.option("--val", "val_inputs", multiple=True, help="Validation text (same forms as --input, e.g. DIR:validation); default: held-out documents.")
@click.option("--val-fraction", type=float, default=0.01, show_default=True, help="Fraction of documents held out for validation.")
@click.option("--field", default="text", show_default=True, help="JSONL/Parquet field holding the text.")
@click.option("--encoding-errors", type=click.Choice(["strict", "replace", "ignore"]), default="strict", show_default=True,
              help="What to do with bytes that are not UTF-8: stop with an error, or replace/drop them.")
@click.option("--tokenizer-sample-mb", type=float, default=200.0, show_default=True,
              help="Train the tokenizer on at most this many MB of text.")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
@json_option
def command(inputs, out_dir, overwrite, tokenizer_dir, train_tokenizer, vocab_size, val_inputs, val_fraction,
                    field, encoding_errors, tokenizer_sample_mb, progress, as_json):
    """Tokenise text into uint16/uint32 shards with a validation split and a manifest."""
    from llmlab.data.prepare import prepare_dataset

    manifest = prepare_dataset(
        inputs, out_dir, tokenizer_dir=tokenizer_dir, train_tokenizer=train_tokenizer, vocab_size=vocab_size,
        val_inputs=val_inputs or None, val_fraction=val_fraction, field=field, encoding_errors=encoding_errors,
        tokenizer_sample_bytes=int(tokenizer_sample_mb * 1e6), progress=progress and not as_json, overwrite=overwrite,
    )
    result = {
        "out": out_dir,
        "train_tokens": manifest["splits"]["train"]["tokens"],
        "val_tokens": manifest["splits"]["val"]["tokens"],
        "train_documents": manifest["splits"]["train"]["documents"],
        "val_documents": manifest["splits"]["val"]["documents"],
        "vocab_size": manifest["vocab_size"],
        "dtype": manifest["dtype"],
        "tokenizer_fingerprint": manifest["tokenizer_fingerprint"],
    }
    emit(result, as_json, lambda r: print_table(
        [(k, v) for k, v in r.items()], ["", "value"], title=f"prepared {out_dir}"))
