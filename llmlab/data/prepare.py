"""Prepare a dataset: get a tokenizer (given or trained on the text), then write token shards."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

from llmlab.data.shards import _tinyworld_split, check_destination, prepare
from llmlab.data.sources import iter_documents, resolve_sources
from llmlab.errors import ConfigError


def prepare_dataset(
    inputs: Sequence[str],
    out_dir: str | Path,
    *,
    tokenizer_dir: str | None = None,
    train_tokenizer: bool = False,
    vocab_size: int = 4096,
    val_inputs: Sequence[str] | None = None,
    val_fraction: float = 0.01,
    field: str = "text",
    encoding_errors: str = "strict",
    tokenizer_sample_bytes: int = 200_000_000,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    from llmlab.tokenizer import Tokenizer

    if bool(tokenizer_dir) == bool(train_tokenizer):
        raise ConfigError("give exactly one of --tokenizer DIR or --train-tokenizer")
    # Before the tokenizer is trained: a refused --out must cost seconds, not the whole run.
    check_destination(out_dir, inputs, val_inputs, overwrite=overwrite)
    if tokenizer_dir:
        tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    else:
        train_inputs, _ = _tinyworld_split(list(inputs), val_inputs)
        docs = iter_documents(resolve_sources(train_inputs), field, encoding_errors)
        tokenizer = Tokenizer.train(_limited(docs, tokenizer_sample_bytes), vocab_size=vocab_size, show_progress=progress)
    return prepare(
        inputs, out_dir, tokenizer, val_inputs=val_inputs, val_fraction=val_fraction, field=field,
        encoding_errors=encoding_errors, progress=progress, overwrite=overwrite,
    )


def _limited(docs: Iterator[str], max_bytes: int) -> Iterator[str]:
    seen = 0
    for doc in docs:
        yield doc
        seen += len(doc)
        if seen >= max_bytes:
            return
