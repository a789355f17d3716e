"""Token shards: a prepared dataset on disk.

    DIR/manifest.json        splits, shard files and token counts, dtype, tokenizer fingerprint
    DIR/tokenizer/           the tokenizer that made the shards
    DIR/train_000000.bin     raw token ids (uint16 when the vocabulary fits, else uint32)
    DIR/val_000000.bin

Shards are read with numpy.memmap, so a dataset of any size costs no memory. Documents are
separated by the end-of-text token; a document lies wholly in one split.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from llmlab.errors import DataError, OutputError

MANIFEST = "manifest.json"
FORMAT = "llmlab-shards"
DEFAULT_SHARD_TOKENS = 1 << 27  # 128M tokens = 256 MB of uint16


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


class ShardWriter:
    """Appends token arrays to numbered shard files of at most `shard_tokens` tokens each."""

    def __init__(self, directory: Path, split: str, dtype: np.dtype, shard_tokens: int = DEFAULT_SHARD_TOKENS):
        self.directory, self.split, self.dtype, self.shard_tokens = directory, split, dtype, shard_tokens
        self.shards: list[dict] = []
        self._file = None
        self._in_shard = 0
        self.tokens = 0
        self.documents = 0
        self.bytes = 0

    def add_document(self, ids: Sequence[int], n_bytes: int) -> None:
        arr = np.asarray(ids, dtype=self.dtype)
        # A document never straddles two shards, so windows drawn from one shard stay meaningful.
        if self._file is not None and self._in_shard + len(arr) > self.shard_tokens and self._in_shard > 0:
            self._close()
        if self._file is None:
            self._open()
        arr.tofile(self._file)
        self._in_shard += len(arr)
        self.tokens += len(arr)
        self.documents += 1
        self.bytes += n_bytes

    def _open(self) -> None:
        name = f"{self.split}_{len(self.shards):06d}.bin"
        self._file = open(self.directory / name, "wb")
        self.shards.append({"file": name, "tokens": 0})
        self._in_shard = 0

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self.shards[-1]["tokens"] = self._in_shard
            self._file = None

    def close(self) -> dict:
        self._close()
        return {"shards": self.shards, "tokens": self.tokens, "documents": self.documents, "bytes": self.bytes}


@dataclass
class ShardedSplit:
    """One split of a prepared dataset, memory-mapped."""

    name: str
    arrays: list[np.memmap]
    bytes: int

    @property
    def tokens(self) -> int:
        return sum(len(a) for a in self.arrays)


class PreparedData:
    """A prepared dataset directory (see module docstring)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        manifest_file = self.directory / MANIFEST
        if not self.directory.is_dir():
            raise DataError(f"data directory not found: {self.directory}")
        try:
            self.manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
        except json.JSONDecodeError as exc:
            raise DataError(f"{manifest_file} is not valid JSON: {exc}") from None
        if self.manifest.get("format") != FORMAT:
            hint = ""
            if (self.directory / "pretrain").is_dir():
                hint = (f"; it looks like raw text (tinyworld output): tokenise it first with "
                        f"`llmlab data prepare --input {self.directory} --train-tokenizer --out SHARDS`")
            raise DataError(f"{self.directory} is not a prepared dataset (no shard {MANIFEST}){hint}")
        self.dtype = np.dtype(self.manifest["dtype"])

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["vocab_size"])

    @property
    def tokenizer_dir(self) -> Path:
        return self.directory / "tokenizer"

    def load_tokenizer(self):
        from llmlab.tokenizer import Tokenizer

        return Tokenizer.from_pretrained(self.tokenizer_dir)

    def split(self, name: str) -> ShardedSplit:
        info = self.manifest["splits"].get(name)
        if info is None or info["tokens"] == 0:
            raise DataError(f"{self.directory} has no {name!r} data")
        arrays = []
        for shard in info["shards"]:
            file = self.directory / shard["file"]
            if not file.is_file():
                raise DataError(f"shard file missing: {file}")
            expected = shard["tokens"] * self.dtype.itemsize
            if file.stat().st_size != expected:
                raise DataError(f"shard {file} has {file.stat().st_size} bytes, the manifest says {expected}: truncated?")
            if shard["tokens"]:
                arrays.append(np.memmap(file, dtype=self.dtype, mode="r"))
        return ShardedSplit(name, arrays, int(info.get("bytes", 0)))


def prepare(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    tokenizer,
    *,
    val_inputs: Sequence[str | Path] | None = None,
    val_fraction: float = 0.01,
    field: str = "text",
    encoding_errors: str = "strict",
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    batch_documents: int = 512,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Tokenise documents into train/val shards in `out_dir` (written atomically). Returns the manifest.

    `out_dir` must be new, empty, or (with overwrite=True) an earlier prepared dataset: see
    check_destination.

    Validation documents are every round(1/val_fraction)-th document, unless `val_inputs` are given
    (or the input is a tinyworld folder, whose own train/val split is kept). A corpus with too few
    documents for that has the last val_fraction of its tokens moved to validation instead.
    """
    from llmlab.checkpoint import atomic_directory
    from llmlab.data.sources import iter_documents, resolve_sources

    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    check_destination(out_dir, inputs, val_inputs, overwrite=overwrite)
    eos = tokenizer.eos_token_id
    if eos is None:
        raise DataError("the tokenizer has no end-of-text token to separate documents")
    train_inputs, val_inputs = _tinyworld_split(inputs, val_inputs)
    train_sources = resolve_sources(train_inputs)
    val_sources = resolve_sources(val_inputs) if val_inputs else None
    dtype = token_dtype(tokenizer.vocab_size)
    period = max(2, round(1 / val_fraction))

    with atomic_directory(out_dir, replace=overwrite) as tmp:  # checked above: ours to replace
        writers = {s: ShardWriter(tmp, s, dtype, shard_tokens) for s in ("train", "val")}
        bar = _progress_bar(train_sources + (val_sources or []), progress)
        streams: list[tuple[Iterable[str], str | None]] = [(iter_documents(train_sources, field, encoding_errors), None)]
        if val_sources is not None:
            streams.append((iter_documents(val_sources, field, encoding_errors), "val"))
        doc_index = 0
        for docs, forced_split in streams:
            for batch in _batches(docs, batch_documents):
                encoded = tokenizer.encode_batch(batch, add_special_tokens=False)
                for text, ids in zip(batch, encoded):
                    split = forced_split or ("val" if doc_index % period == period - 1 and val_sources is None else "train")
                    n_bytes = len(text.encode("utf-8"))
                    writers[split].add_document(ids + [eos], n_bytes)
                    doc_index += 1
                    bar.update(n_bytes)
                bar.set_postfix(tokens=f"{writers['train'].tokens + writers['val'].tokens:,}")
        _finish_bar(bar)
        splits = {name: w.close() for name, w in writers.items()}
        if splits["train"]["tokens"] == 0:
            raise DataError("the input holds no text: the corpus is empty")
        if splits["val"]["tokens"] == 0:
            _move_tail_to_val(tmp, splits, dtype, val_fraction)
        tokenizer.save(tmp / "tokenizer")
        manifest = {
            "format": FORMAT,
            "version": 1,
            "dtype": dtype.name,
            "vocab_size": tokenizer.vocab_size,
            "eos_token_id": eos,
            "tokenizer_fingerprint": tokenizer.fingerprint(),
            "field": field,
            "sources": [s.location for s in train_sources] + [s.location for s in (val_sources or [])],
            "splits": splits,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def check_destination(out_dir: str | Path, inputs: Sequence[str | Path], val_inputs: Sequence[str | Path] | None = None,
                      *, overwrite: bool = False) -> None:
    """Refuse, before any work, an `out_dir` whose replacement would lose something: one that
    overlaps an input, a non-empty folder that is not a prepared dataset, or (without overwrite) an
    earlier dataset. Also checks that it can be written."""
    from llmlab.outputs import check_writable

    out = Path(out_dir)
    check_writable(out, kind="dir", flag="--out", replaced=True)
    for item in [*inputs, *(val_inputs or [])]:
        if _overlaps(out, str(item)):
            raise OutputError(f"--out {out} overlaps the input {item}; choose a separate directory")
    if not (out.is_dir() and any(out.iterdir())):
        return
    if not is_prepared_dataset(out):
        raise OutputError(f"--out {out} is not empty and is not an llmlab dataset; refusing to replace it "
                          "(choose a new or empty directory)")
    if not overwrite:
        raise OutputError(f"--out {out} already holds a prepared dataset; pass --overwrite to replace it")


def is_prepared_dataset(directory: Path) -> bool:
    """Whether `directory` holds a manifest with the llmlab shards format marker."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def _overlaps(out: Path, item: str) -> bool:
    """Whether `out` is, lies inside, or contains a path the input `item` reads (a file, a folder,
    each match of a glob, the DIR of DIR:SPLIT; a hub dataset reads nothing local)."""
    import glob

    if item.startswith("hf:"):
        return False
    if any(ch in item for ch in "*?["):
        candidates = [Path(m) for m in glob.glob(item, recursive=True)]
    else:
        candidates = [Path(item)]
        folder, colon, _ = item.rpartition(":")
        if colon and folder:
            candidates.append(Path(folder))
    out_r = out.resolve()
    for path in candidates:
        in_r = path.resolve()
        if out_r == in_r or in_r in out_r.parents or out_r in in_r.parents:
            return True
    return False


def _tinyworld_split(inputs, val_inputs):
    """A tinyworld output folder carries its own document-level split: keep it."""
    if val_inputs is None and len(inputs) == 1:
        root = Path(inputs[0])
        train, val = root / "pretrain" / "train.jsonl", root / "pretrain" / "val.jsonl"
        if train.is_file() and val.is_file():
            return [str(train)], [str(val)]
    return list(inputs), (list(val_inputs) if val_inputs else None)


def _move_tail_to_val(directory: Path, splits: dict, dtype: np.dtype, val_fraction: float) -> None:
    """Too few documents for a document-level split: the last tokens of the last train shard become val."""
    train = splits["train"]
    last = train["shards"][-1]
    path = directory / last["file"]
    tokens = np.fromfile(path, dtype=dtype)
    n_val = max(2, min(len(tokens) // 2, math.ceil(train["tokens"] * val_fraction)))
    keep, tail = tokens[:-n_val], tokens[-n_val:]
    keep.tofile(path)
    tail.tofile(directory / "val_000000.bin")
    moved_bytes = int(train["bytes"] * n_val / max(train["tokens"], 1))
    last["tokens"] -= n_val
    train["tokens"] -= n_val
    train["bytes"] -= moved_bytes
    splits["val"] = {
        "shards": [{"file": "val_000000.bin", "tokens": n_val}], "tokens": n_val, "documents": 0,
        "bytes": moved_bytes, "note": "too few documents for a document-level split: the corpus's last tokens",
    }


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _finish_bar(bar) -> None:
    """The total is an estimate (file sizes, JSON syntax included); end the bar at 100%, not short of it."""
    if bar.total and bar.n < bar.total:
        bar.total = bar.n
        bar.refresh()
    bar.close()


def _progress_bar(sources, enabled: bool):
    from llmlab.progress import progress_bar

    total = 0
    for s in sources:
        p = Path(s.location)
        total += p.stat().st_size if p.is_file() else 0
    return progress_bar(total=total or None, unit="B", unit_scale=True, desc="tokenising", disable=not enabled)
