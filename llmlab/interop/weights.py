"""Reading Hugging Face weight files: safetensors (single or sharded) and, only when trusted,
PyTorch pickles. Tensors are read one at a time and checked against the shape the config implies,
so a mismatch names the Hugging Face weight at fault."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from llmlab.errors import CheckpointError

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_FILE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"


class WeightSource:
    """The tensors of a Hugging Face model folder, by name, read lazily.

    `take(name, shape)` returns one tensor (checked); `leftover()` lists names never taken, which
    the caller treats as "config and weights do not match" unless they are known leftovers.
    """

    def __init__(self, src: Path, trust_pickle: bool = False):
        self.src = src
        self._files: dict[str, Path] = {}  # weight name -> file
        self._handles: dict[Path, Any] = {}
        self._pickled: dict[Path, dict[str, Any]] = {}
        self._taken: set[str] = set()
        self.prefix_map: dict[str, str] = {}  # expected name -> stored name (see add_prefix_if_missing)
        self._index(trust_pickle)

    # ------------------------------------------------------------------ discovery
    def _index(self, trust_pickle: bool) -> None:
        src = self.src
        if (src / SAFETENSORS_INDEX).is_file():
            self._files = self._read_index(src / SAFETENSORS_INDEX)
        elif (src / SAFETENSORS_FILE).is_file():
            self._files = {name: src / SAFETENSORS_FILE for name in self._safetensors_keys(src / SAFETENSORS_FILE)}
        elif (src / PICKLE_FILE).is_file() or (src / PICKLE_INDEX).is_file():
            if not trust_pickle:
                raise CheckpointError(
                    f"{src} holds only PyTorch pickle weights ({PICKLE_FILE}), which can run code when loaded; "
                    "convert them to safetensors, or pass --trust-pickle if you trust their source"
                )
            if (src / PICKLE_INDEX).is_file():
                self._files = self._read_index(src / PICKLE_INDEX)
            else:
                self._files = {name: src / PICKLE_FILE for name in self._load_pickle(src / PICKLE_FILE)}
        else:
            raise CheckpointError(
                f"no weights in {src} (expected {SAFETENSORS_FILE}, {SAFETENSORS_INDEX} or, with --trust-pickle, "
                f"{PICKLE_FILE})"
            )
        if not self._files:
            raise CheckpointError(f"the weights of {src} hold no tensors")

    def _read_index(self, index_file: Path) -> dict[str, Path]:
        try:
            weight_map = json.loads(index_file.read_text())["weight_map"]
            if not isinstance(weight_map, dict):
                raise TypeError("weight_map is not a mapping")
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{index_file} is not a valid shard index ({type(exc).__name__}: {exc})") from None
        for shard in weight_map.values():
            if not isinstance(shard, str) or Path(shard).name != shard:  # no paths out of the folder
                raise CheckpointError(f"{index_file} names an invalid shard file {shard!r}")
        files = {name: self.src / shard for name, shard in weight_map.items()}
        for shard in sorted(set(files.values())):
            if not shard.is_file():
                raise CheckpointError(f"shard {shard.name} named in {index_file.name} is missing from {self.src}")
        return files

    def _safetensors_keys(self, file: Path) -> list[str]:
        return list(self._open(file).keys())

    def _open(self, file: Path):
        handle = self._handles.get(file)
        if handle is None:
            from safetensors import safe_open

            try:
                handle = safe_open(str(file), framework="pt", device="cpu")
            except Exception as exc:  # SafetensorError, OSError: all mean unreadable
                raise CheckpointError(f"{file} is corrupt or truncated ({_first_line(exc)})") from None
            self._handles[file] = handle
        return handle

    def _load_pickle(self, file: Path) -> dict[str, Any]:
        if file not in self._pickled:
            import torch

            try:
                # weights_only: plain tensors and containers only, never arbitrary objects.
                state = torch.load(str(file), map_location="cpu", weights_only=True)
            except Exception as exc:
                raise CheckpointError(f"cannot read {file} ({_first_line(exc)})") from None
            if not isinstance(state, dict):
                raise CheckpointError(f"{file} does not hold a state dict")
            self._pickled[file] = state
        return self._pickled[file]

    # ------------------------------------------------------------------ names
    @property
    def names(self) -> list[str]:
        return list(self._files)

    def add_prefix_if_missing(self, prefix: str, markers: Iterable[str]) -> None:
        """Accept checkpoints saved from the bare base model (GPT-2's original files say `h.0...`,
        not `transformer.h.0...`): map `prefix + name` to `name` when no name has the prefix."""
        if any(n.startswith(prefix) for n in self._files):
            return
        markers = tuple(markers)
        if any(n.startswith(markers) for n in self._files):
            self.prefix_map = {prefix + n: n for n in self._files if not n.startswith("lm_head.")}

    def has(self, name: str) -> bool:
        return self.prefix_map.get(name, name) in self._files

    # ------------------------------------------------------------------ reading
    def take(self, name: str, shape: tuple[int, ...]):
        """The tensor `name`, checked to have `shape` and a float dtype."""
        stored = self.prefix_map.get(name, name)
        file = self._files.get(stored)
        if file is None:
            raise CheckpointError(
                f"{self.src} lacks weight {name!r} that its config.json implies; config and weights do not match"
            )
        try:
            if file in self._pickled or file.name.endswith(".bin"):
                tensor = self._load_pickle(file)[stored]
            else:
                tensor = self._open(file).get_tensor(stored)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"{file} is corrupt or truncated (reading {stored!r}: {_first_line(exc)})") from None
        if tuple(tensor.shape) != tuple(shape):
            raise CheckpointError(
                f"{self.src}: weight {name!r} has shape {list(tensor.shape)} but config.json implies {list(shape)}; "
                "config and weights do not match"
            )
        if not tensor.is_floating_point():
            raise CheckpointError(f"{self.src}: weight {name!r} has non-float dtype {tensor.dtype}")
        self._taken.add(stored)
        return tensor

    def leftover(self) -> list[str]:
        reverse = {v: k for k, v in self.prefix_map.items()}
        return [reverse.get(n, n) for n in self._files if n not in self._taken]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
