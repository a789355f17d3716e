"""Small helpers shared by the family bundles."""

from __future__ import annotations

from typing import Any


class Unsupported(Exception):
    """A feature of a Hugging Face model that llmlab's model cannot represent exactly.

    Raised by the family mappings without context; `llmlab.interop.hf` turns it into a one-line
    CheckpointError naming the folder."""


def hf_field(hf: dict[str, Any], *keys: str) -> Any:
    """The first of `keys` present in a Hugging Face config (names differ between families and versions)."""
    for key in keys:
        if hf.get(key) is not None:
            return hf[key]
    raise Unsupported(f"config.json lacks {keys[0]!r}")
