"""Where text comes from: files, directories, globs, JSONL, Parquet, Hugging Face datasets.

Every source yields documents as strings. A document is the unit that is never split between the
training and validation sets, and documents are separated by the end-of-text token in the shards.

    .txt / .md / .text    one file = one document
    .jsonl / .json        one JSON object per line; the document is its `text` field (or --field)
    .parquet              one row = one document, from the `text` column (needs pyarrow)
    a directory           every supported file below it, in sorted order
    a glob ("data/*.txt") every match, sorted
    a `datasets` folder   a local Hugging Face dataset saved with save_to_disk
    hf:NAME[:SPLIT]       a Hugging Face hub dataset (opt-in; needs the network and `datasets`)
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from llmlab.errors import DataError, json_error

TEXT_SUFFIXES = {".txt", ".md", ".text"}
JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}
PARQUET_SUFFIXES = {".parquet"}
SUPPORTED = TEXT_SUFFIXES | JSONL_SUFFIXES | PARQUET_SUFFIXES


@dataclass(frozen=True)
class Source:
    """One resolved input: a file of a known kind, a saved HF dataset, or a hub dataset name."""

    kind: str  # "text" | "jsonl" | "parquet" | "hf_disk" | "hf_hub"
    location: str
    split: str | None = None


def resolve_sources(inputs: Sequence[str | Path]) -> list[Source]:
    """Expand user inputs into concrete sources, with a clear error for anything unusable."""
    if not inputs:
        raise DataError("no input given")
    sources: list[Source] = []
    for raw in inputs:
        item = str(raw)
        if item.startswith("hf:"):
            name, _, split = item[3:].partition(":")
            sources.append(Source("hf_hub", name, split or "train"))
            continue
        path = Path(item)
        folder, colon, split = item.rpartition(":")
        if colon and not path.exists() and folder and is_hf_dataset_dir(Path(folder)):
            # DIR:split picks one split of a saved DatasetDict (like hf:NAME:split on the hub), so
            # `--input ds:train --val ds:validation` uses the dataset's own validation split.
            sources.append(Source("hf_disk", folder, split))
            continue
        if any(ch in item for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            files = [m for m in matches if m.is_file() and m.suffix.lower() in SUPPORTED]
            if not files:
                raise DataError(f"no supported files match {item!r} (supported: {', '.join(sorted(SUPPORTED))})")
            sources.extend(_file_source(f) for f in files)
        elif path.is_dir():
            if is_hf_dataset_dir(path):
                sources.append(Source("hf_disk", str(path)))
                continue
            files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED)
            if not files:
                raise DataError(f"directory {path} holds no text files ({', '.join(sorted(SUPPORTED))})")
            sources.extend(_file_source(f) for f in files)
        elif path.is_file():
            sources.append(_file_source(path))
        else:
            raise DataError(f"input not found: {path}")
    return sources


def is_hf_dataset_dir(path: Path) -> bool:
    """A folder written by `save_to_disk`: a Dataset (dataset_info.json, state.json) or a DatasetDict
    (dataset_dict.json at the top, one such folder per split). Checked before listing files, as
    those .json metadata files would otherwise be read as JSONL."""
    return any((path / name).is_file() for name in ("dataset_dict.json", "dataset_info.json", "state.json"))


def _file_source(path: Path) -> Source:
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return Source("jsonl", str(path))
    if suffix in PARQUET_SUFFIXES:
        return Source("parquet", str(path))
    return Source("text", str(path))  # explicit files of any other suffix are read as text


def iter_documents(
    sources: Sequence[Source], field: str = "text", encoding_errors: str = "strict"
) -> Iterator[str]:
    """Yield every document of every source, in order. Empty documents are skipped."""
    for source in sources:
        reader = _READERS[source.kind]
        for doc in reader(source, field, encoding_errors):
            if doc and not doc.isspace():
                yield doc


def _read_text_file(source: Source, field: str, errors: str) -> Iterator[str]:
    data = Path(source.location).read_bytes()
    yield _decode(data, source.location, errors)


def _read_jsonl(source: Source, field: str, errors: str) -> Iterator[str]:
    with open(source.location, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = _decode(raw, f"{source.location}:{lineno}", errors).strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(json_error(source.location, exc, lineno)) from None
            if not isinstance(record, dict) or field not in record:
                raise DataError(f"{source.location}:{lineno}: record has no {field!r} field (choose one with --field)")
            value = record[field]
            if not isinstance(value, str):
                raise DataError(f"{source.location}:{lineno}: field {field!r} is {type(value).__name__}, not text")
            yield value


def _read_parquet(source: Source, field: str, errors: str) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading Parquet needs pyarrow: pip install 'llmlab[parquet]'") from None
    try:
        table = pq.ParquetFile(source.location)
    except Exception as exc:
        raise DataError(f"cannot read {source.location}: {str(exc).splitlines()[0]}") from None
    if field not in table.schema_arrow.names:
        raise DataError(f"{source.location} has no column {field!r} (columns: {', '.join(table.schema_arrow.names)})")
    for batch in table.iter_batches(columns=[field]):
        for value in batch.column(0).to_pylist():
            if isinstance(value, str):
                yield value


def _read_hf_disk(source: Source, field: str, errors: str) -> Iterator[str]:
    try:
        import datasets
    except ImportError:
        raise DataError("reading a Hugging Face dataset folder needs `datasets`: pip install 'llmlab[datasets]'") from None
    ds = datasets.load_from_disk(source.location)
    if isinstance(ds, datasets.DatasetDict):
        if source.split is not None and source.split not in ds:
            raise DataError(f"{source.location} has no split {source.split!r} (splits: {', '.join(ds)})")
        ds = ds[source.split or ("train" if "train" in ds else next(iter(ds)))]
    elif source.split is not None:
        raise DataError(f"{source.location} is a single dataset, not a DatasetDict: drop ':{source.split}'")
    if field not in ds.column_names:
        raise DataError(f"{source.location} has no column {field!r} (columns: {', '.join(ds.column_names)})")
    # In batches: the arrow data is memory-mapped, and a whole column as one Python list is not.
    for start in range(0, len(ds), 1000):
        for value in ds[start:start + 1000][field]:
            if isinstance(value, str):
                yield value


def _read_hf_hub(source: Source, field: str, errors: str) -> Iterator[str]:
    try:
        import datasets
    except ImportError:
        raise DataError("hub datasets need `datasets` and the network: pip install 'llmlab[datasets]'") from None
    try:
        ds = datasets.load_dataset(source.location, split=source.split, streaming=True)
    except Exception as exc:
        raise DataError(f"cannot load hub dataset {source.location!r}: {str(exc).splitlines()[0]}") from None
    for record in ds:
        value = record.get(field)
        if isinstance(value, str):
            yield value


def _decode(data: bytes, where: str, errors: str) -> str:
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{where}: not UTF-8 text (bad byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it, or pass --encoding-errors replace"
        ) from None


_READERS = {
    "text": _read_text_file,
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
    "hf_disk": _read_hf_disk,
    "hf_hub": _read_hf_hub,
}
