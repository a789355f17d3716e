"""Model families as registered bundles: what `import_hf` and `export_hf` need to know about one
Hugging Face architecture, as data.

A `Family` holds the config mapping (`config_from_hf`, `config_to_hf`, `export_problems`) and a
declarative weight table: rows of (llmlab name, Hugging Face name(s), transform), where `{i}` (or
any `{name}`) stands for one dot-free part of a name, such as the layer index. One function
applies a table in each direction; which rows apply is decided by the llmlab model itself (the
names and shapes of `TransformerLM(cfg)` built on the meta device), so a table lists every weight
a family can have and needs no conditions. A family module builds its bundle and calls `register`; every module in
`llmlab/interop/families/` is imported on first lookup, so a new family is one new module there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

from llmlab.config import ModelConfig
from llmlab.errors import CheckpointError
from llmlab.interop.common import Unsupported
from llmlab.interop.weights import WeightSource

Shape = tuple[int, ...]


# ---------------------------------------------------------------------------- transforms
class Same:
    """The tensor as it is."""

    def hf_shapes(self, shape: Shape, cfg: ModelConfig) -> list[Shape]:
        return [shape]

    def to_ours(self, tensors: list[Any], shape: Shape, cfg: ModelConfig) -> Any:
        return tensors[0]

    def to_hf(self, tensor: Any, cfg: ModelConfig) -> list[Any]:
        return [tensor]


class Transpose(Same):
    """GPT-2's Conv1D stores [in, out], the transpose of nn.Linear's [out, in] (a 1-D bias stays as it is)."""

    def hf_shapes(self, shape: Shape, cfg: ModelConfig) -> list[Shape]:
        return [shape[::-1]]

    def to_ours(self, tensors: list[Any], shape: Shape, cfg: ModelConfig) -> Any:
        return tensors[0].t()

    def to_hf(self, tensor: Any, cfg: ModelConfig) -> list[Any]:
        return [tensor.t()]


@dataclass(frozen=True)
class Concat:
    """Several Hugging Face tensors that llmlab fuses along dim 0 (Llama's q, k, v -> attn.qkv);
    `sizes(cfg)` gives each part's length."""

    sizes: Callable[[ModelConfig], Sequence[int]]

    def hf_shapes(self, shape: Shape, cfg: ModelConfig) -> list[Shape]:
        return [(size, *shape[1:]) for size in self.sizes(cfg)]

    def to_ours(self, tensors: list[Any], shape: Shape, cfg: ModelConfig) -> Any:
        import torch

        return torch.cat(tensors)

    def to_hf(self, tensor: Any, cfg: ModelConfig) -> list[Any]:
        # clone: safetensors refuses (older versions) or duplicates tensors that share storage.
        return [part.clone() for part in tensor.split(list(self.sizes(cfg)))]


class Absent:
    """A weight llmlab has but the Hugging Face layout leaves out because it is always zero (Qwen2's
    o_proj has no bias, llmlab's attention_bias covers all four projections): zeros on import, and
    on export it must be zero to be exact."""

    def hf_shapes(self, shape: Shape, cfg: ModelConfig) -> list[Shape]:
        return []

    def to_ours(self, tensors: list[Any], shape: Shape, cfg: ModelConfig) -> Any:
        import torch

        return torch.zeros(shape)  # cast with the rest of the state to the checkpoint's dtype

    def to_hf(self, tensor: Any, cfg: ModelConfig) -> list[Any]:
        if bool(tensor.any()):
            raise Unsupported("it is not zero, and the layout has no place for it")
        return []


SAME, TRANSPOSE, ABSENT = Same(), Transpose(), Absent()


@dataclass(frozen=True)
class Weight:
    """One row of a weight table: llmlab name <-> Hugging Face name (several for a Concat, none for
    Absent). A table's first row whose `ours` matches a name is the one used."""

    ours: str
    theirs: str | tuple[str, ...]
    transform: Any = SAME  # Same, Transpose, Concat, Absent, or anything with their three methods

    @property
    def hf_names(self) -> tuple[str, ...]:
        return (self.theirs,) if isinstance(self.theirs, str) else self.theirs


def qkv_sizes(cfg: ModelConfig) -> tuple[int, int, int]:
    """Rows of q, k and v in llmlab's fused projection (grouped-query attention: k, v are smaller)."""
    q, kv = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
    return q, kv, kv


# ---------------------------------------------------------------------------- the bundle
@dataclass(frozen=True)
class Family:
    name: str  # the key: ModelConfig.family of the models it exports
    title: str  # for messages: "GPT-2"
    model_types: tuple[str, ...]  # Hugging Face config.json model_type values it imports
    architecture: str  # the transformers class it writes (and reads when config.json names none)
    config_from_hf: Callable[[dict[str, Any], list[str]], ModelConfig]  # (hf config, notes) -> config
    config_to_hf: Callable[[ModelConfig], dict[str, Any]]  # the config.json export writes
    weights: tuple[Weight, ...]
    export_problems: Callable[[ModelConfig], list[str]] = lambda cfg: []  # why a config cannot be exported
    base_prefix: str = ""  # the prefix that checkpoints of the bare base model lack ("transformer.")
    buffers: tuple[str, ...] = ()  # name endings of stored non-weights (causal masks, inv_freq)

    def rule_for(self, ours: str) -> tuple[Weight, tuple[str, ...]] | None:
        """The row that maps the llmlab weight `ours`, and its Hugging Face names filled in."""
        for rule in self.weights:
            match = _pattern(rule.ours).fullmatch(ours)
            if match:
                return rule, tuple(name.format(**match.groupdict()) for name in rule.hf_names)
        return None

    def ignorable(self, hf_name: str, cfg: ModelConfig) -> bool:
        """Stored names that are not weights of the model, or a duplicate of the tied embedding."""
        if hf_name.endswith(self.buffers):
            return True
        head = self.rule_for("lm_head.weight")
        return cfg.tie_embeddings and head is not None and hf_name in head[1]


@lru_cache(maxsize=None)
def _pattern(ours: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", ours)  # literal, index name, literal, ...
    return re.compile("".join(re.escape(p) if k % 2 == 0 else f"(?P<{p}>[^.]+)" for k, p in enumerate(parts)))


# ---------------------------------------------------------------------------- registry
_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    taken = {t for f in _REGISTRY.values() if f.name != family.name for t in f.model_types}
    clash = taken & set(family.model_types)
    if clash:
        raise ValueError(f"model_type {sorted(clash)[0]!r} is registered twice")  # a programming error
    _REGISTRY[family.name] = family
    return family


def families() -> dict[str, Family]:
    """Every registered family by name (importing the family modules on first use)."""
    import llmlab.interop.families  # noqa: F401  (each module registers itself)

    return dict(_REGISTRY)


def family_for_model_type(model_type: Any) -> Family | None:
    return next((f for f in families().values() if model_type in f.model_types), None)


def family_for_config(cfg: ModelConfig, source: Any) -> Family:
    """The family `export_hf` writes `cfg` as; a one-line CheckpointError for an unknown one."""
    known = families()
    if cfg.family not in known:
        raise CheckpointError(
            f"cannot export {source}: unknown family {cfg.family!r} in its config.json (llmlab exports "
            f"{', '.join(known)})"
        )
    return known[cfg.family]


# ---------------------------------------------------------------------------- applying a table
def expected_weights(cfg: ModelConfig) -> dict[str, Any]:
    """The weights a checkpoint of `cfg` stores, as meta tensors (names and shapes, no memory)."""
    import torch

    from llmlab.checkpoint import weights_for_saving
    from llmlab.model import TransformerLM

    with torch.device("meta"):
        return weights_for_saving(TransformerLM(cfg))


def weights_from_hf(family: Family, src: WeightSource, cfg: ModelConfig) -> dict[str, Any]:
    """The llmlab state dict of `cfg`, read from `src` through the family's table (shapes checked)."""
    if family.base_prefix:
        markers = {n[len(family.base_prefix):].split(".")[0] + "." for r in family.weights for n in r.hf_names
                   if n.startswith(family.base_prefix)}
        src.add_prefix_if_missing(family.base_prefix, sorted(markers))
    out = {}
    for ours, meta in expected_weights(cfg).items():
        rule, names = _rule(family, ours)
        shape = tuple(meta.shape)
        shapes = rule.transform.hf_shapes(shape, cfg)
        out[ours] = rule.transform.to_ours([src.take(n, s) for n, s in zip(names, shapes)], shape, cfg)
    return out


def weights_to_hf(family: Family, state: dict[str, Any], cfg: ModelConfig) -> dict[str, Any]:
    """The Hugging Face state dict of the llmlab `state` of `cfg`, through the family's table.

    What is written is what the exported config.json describes: the weights of the llmlab model that
    `config_from_hf(config_to_hf(cfg))` builds. A bias llmlab lacks but that layout requires (GPT-2
    always has biases) is written as zeros, which is exact; anything else that differs is refused."""
    import torch

    described = expected_weights(family.config_from_hf(family.config_to_hf(cfg), []))
    left = sorted(state.keys() - described.keys())
    if left:
        raise Unsupported(f"the {family.title} layout has no place for weight {left[0]!r}")
    dtype = next(iter(state.values())).dtype
    out = {}
    for ours, meta in described.items():
        rule, names = _rule(family, ours)
        shape = tuple(meta.shape)
        tensor = state.get(ours)
        if tensor is None and ours.endswith(".bias"):
            tensor = torch.zeros(shape, dtype=dtype)
        if tensor is None or tuple(tensor.shape) != shape:
            raise Unsupported(f"the exported config would describe weight {ours!r} differently")
        try:
            out.update(zip(names, rule.transform.to_hf(tensor, cfg)))
        except Unsupported as exc:
            raise Unsupported(f"weight {ours!r}: {exc}") from None
    return out


def _rule(family: Family, ours: str) -> tuple[Weight, tuple[str, ...]]:
    found = family.rule_for(ours)
    if found is None:
        raise Unsupported(f"the {family.title} weight table has no row for {ours!r}")
    return found
