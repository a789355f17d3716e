"""tinyworld's evaluation probes, from a generated dataset folder or rebuilt in memory.

A tinyworld dataset (`llmlab data tinyworld --out DIR`, or the quickstart's `runs/quickstart/tinyworld`)
holds `kb.jsonl` and `probes/*.jsonl`. Without a folder, the probes are rebuilt in memory from
`World(seed)` with the same generators and random streams the writer uses, so they are identical
to the files of a dataset generated with that seed; the seed must be the one the model's training
data came from (the quickstart's default is 0).
"""

from __future__ import annotations

import json
import random
from functools import cached_property
from pathlib import Path
from typing import Any

from llmlab.errors import DataError, json_error

PROBES = ("unanswerable", "claims", "bias_templates", "safety", "refusals", "story_prompts", "classification/train",
          "classification/test", "arithmetic/steps_1", "arithmetic/steps_2", "arithmetic/steps_3",
          "arithmetic/steps_4")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSONL file, with one-line errors naming the file and line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"file not found: {p}")
    out = []
    with p.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(json_error(p, exc, i)) from None
    return out


def _is_tinyworld(path: Path) -> bool:
    try:
        return json.loads((path / "manifest.json").read_text(encoding="utf-8")).get("generator") == "tinyworld"
    except (OSError, ValueError, AttributeError):
        return False


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _trained_on(model_dir: Path, hops: int = 4) -> list[Path]:
    """Paths a checkpoint's training data came from, following its train_config.json (`data`, a
    prepared dataset's `sources`) and `init_from` back through earlier stages (SFT on pretrain...)."""
    out: list[Path] = []
    for _ in range(hops):
        cfg = next((_json(d / "train_config.json") for d in (model_dir, model_dir.parent)
                    if (d / "train_config.json").is_file()), {})
        data = cfg.get("data")
        if isinstance(data, str) and data:
            out.append(Path(data))
            sources = _json(Path(data) / "manifest.json").get("sources")
            out += [Path(s) for s in sources if isinstance(s, str)] if isinstance(sources, list) else []
        if not isinstance(cfg.get("init_from"), str):
            break
        model_dir = Path(cfg["init_from"])
    return out


def find_tinyworld_dir(model_dir: str | Path | None) -> Path | None:
    """The tinyworld dataset a checkpoint was trained on: a `tinyworld/` folder beside one of the
    checkpoint's parent folders (the quickstart's layout), else the tinyworld folder its recorded
    training data (train_config.json, relative paths from the current directory) lies in."""
    if model_dir is None:
        return None
    p = Path(model_dir).resolve()
    for parent in [p, *list(p.parents)[:4]]:
        candidate = parent / "tinyworld"
        if (candidate / "manifest.json").is_file():
            return candidate
    # A world generated with another seed or bias must not be silently replaced by World(seed=0).
    for data in _trained_on(p):
        for candidate in [data, *list(data.parents)[:3]]:
            if _is_tinyworld(candidate):
                return candidate
    return None


class TinyworldProbes:
    """Probe sets of one tinyworld: `probes.load("claims")`, `probes.kb()`, `probes.world`."""

    def __init__(self, data_dir: str | Path | None = None, seed: int = 0):
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.seed = seed
        self.bias = 0.0
        if self.data_dir is not None:
            manifest_file = self.data_dir / "manifest.json"
            if not self.data_dir.is_dir():
                raise DataError(f"tinyworld folder not found: {self.data_dir}")
            if not manifest_file.is_file():
                raise DataError(f"{self.data_dir} is not a tinyworld dataset (no manifest.json)")
            try:
                manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read {manifest_file}: {exc}") from None
            self.seed = int(manifest.get("seed", seed))
            self.bias = float(manifest.get("bias", 0.0))

    @property
    def source(self) -> str:
        """Where the probes come from, for reports."""
        return str(self.data_dir) if self.data_dir else f"tinyworld World(seed={self.seed}), rebuilt in memory"

    @cached_property
    def world(self) -> Any:
        from llmlab.data.tinyworld import World

        return World(seed=self.seed, bias=self.bias)

    def _rng(self, name: str) -> random.Random:
        return random.Random(f"tinyworld/{self.seed}/probes/{name}")  # the writer's streams

    def load(self, name: str) -> list[dict[str, Any]]:
        if name not in PROBES:
            raise DataError(f"unknown tinyworld probe {name!r}; known: {', '.join(PROBES)}")
        if self.data_dir is not None:
            return read_jsonl(self.data_dir / "probes" / f"{name}.jsonl")
        from llmlab.data.tinyworld import probes

        w = self.world
        if name.startswith("classification/"):
            train, test = probes.classification(w, self._rng("classification"))
            return train if name.endswith("train") else test
        if name.startswith("arithmetic/"):
            steps = int(name[-1])
            return probes.arithmetic(w, self._rng(f"arithmetic{steps}"), steps)
        if name == "bias_templates":
            return probes.bias_templates(w)
        return getattr(probes, name)(w, self._rng(name))

    def kb(self) -> list[dict[str, Any]]:
        """The knowledge base: {subject, relation, object, ...} triples."""
        if self.data_dir is not None:
            return read_jsonl(self.data_dir / "kb.jsonl")
        return list(self.world.triples())


def validation_documents(probes: TinyworldProbes, n: int) -> tuple[list[str], int]:
    """The first `n` documents of pretrain/val.jsonl of the dataset `llmlab data tinyworld` writes for
    this world, rebuilt in memory (the writer's chunks are deterministic), and the --tokens size
    that makes a generated dataset contain them."""
    import math

    from llmlab.data.tinyworld.writer import DEFAULT_VAL_FRACTION, make_chunk

    docs: list[str] = []
    tokens = 0
    index = 0
    while len(docs) < n:
        for is_val, line, n_tok in make_chunk("pretrain", probes.seed, probes.bias, index, DEFAULT_VAL_FRACTION):
            tokens += n_tok
            if is_val and len(docs) < n:
                docs.append(json.loads(line)["text"])
        index += 1
    return docs, int(math.ceil(tokens / 100_000) * 100_000)
