"""LoRA: low-rank adapters on chosen projections (Hu et al., 2021), and merge-and-unload.

An adapted projection computes  y = x W^T + b + (alpha / r) * dropout(x) A^T B^T  with the base
W, b frozen and only A [r, in] and B [out, r] trained. B starts at zero, so an adapted model is
exactly the base model until the first update. Merging folds (alpha / r) * B A into W and gives
back plain `nn.Linear` layers: the merged model is an ordinary TransformerLM with the same
parameter names as the base, so it saves as a normal checkpoint.

Targets (names of projections in every block):
    q, k, v   the query / key / value slices of the fused `attn.qkv` projection
    qkv       the whole fused projection with one adapter
    o         the attention output projection (`attn.out`)
    gate, up, down   the MLP projections (gate exists only with SwiGLU); in a mixture-of-experts
              layer, those of every expert (and of the shared expert); routers are never adapted
    all       every projection above that the model has ("all-linear", as QLoRA recommends)

Our attention computes q, k and v with one fused Linear. "q"/"v" (the LoRA paper's choice) adapt
only those output rows, each slice with its own A and B, exactly as if W_q and W_v were separate
layers; "qkv" puts one adapter (one A, one B) on the fused matrix, which shares A between q, k and
v and so has fewer parameters than q+k+v at the same rank. Embeddings and the (tied) output head
are never adapted.

Parameter names: an adapted layer keeps its base `weight`/`bias` names and adds
`lora_A.<slice>` / `lora_B.<slice>` (slice "all" for an unsliced layer), so base checkpoints load
into adapted models with strict=False and `lora_state_dict` picks out the adapters alone.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmlab.errors import ConfigError

QKV_SLICES = ("q", "k", "v")
TARGETS = ("q", "k", "v", "qkv", "o", "gate", "up", "down")


@dataclass
class LoRAConfig:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("all",)

    def __post_init__(self) -> None:
        if isinstance(self.targets, str):
            self.targets = tuple(t.strip() for t in self.targets.split(",") if t.strip())
        self.targets = tuple(self.targets)
        if self.rank < 1:
            raise ConfigError(f"LoRA rank must be >= 1, got {self.rank}")
        if self.alpha <= 0:
            raise ConfigError(f"LoRA alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        unknown = [t for t in self.targets if t not in TARGETS + ("all",)]
        if unknown or not self.targets:
            bad = unknown[0] if unknown else "(none)"
            raise ConfigError(f"unknown LoRA target {bad!r}; choose from {', '.join(TARGETS)} or all")
        if "qkv" in self.targets and set(self.targets) & set(QKV_SLICES):
            raise ConfigError("LoRA targets: use either qkv (one adapter on the fused projection) or q/k/v "
                              "slices, not both")

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def to_dict(self) -> dict:
        return {"rank": self.rank, "alpha": self.alpha, "dropout": self.dropout, "targets": list(self.targets)}


class LoRALinear(nn.Module):
    """A frozen linear layer plus low-rank adapters on some (or all) of its output rows.

    slices: name -> (start, end) output rows that slice's adapter writes to.
    """

    def __init__(self, base: nn.Linear, slices: dict[str, tuple[int, int]], rank: int, alpha: float, dropout: float):
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight  # the same Parameter objects: no copy, names unchanged
        self.bias = base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.rank, self.scaling = rank, alpha / rank
        self.slices = dict(slices)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.enabled = True
        dev, dtype = base.weight.device, base.weight.dtype
        self.lora_A = nn.ParameterDict()
        self.lora_B = nn.ParameterDict()
        for name, (start, end) in self.slices.items():
            a = torch.empty(rank, self.in_features, device=dev, dtype=dtype)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # as nn.Linear and the reference LoRA code
            self.lora_A[name] = nn.Parameter(a)
            self.lora_B[name] = nn.Parameter(torch.zeros(end - start, rank, device=dev, dtype=dtype))

    def delta_weight(self) -> torch.Tensor:
        """The [out, in] update the adapters add to the weight: scaling * B A per slice."""
        delta = torch.zeros_like(self.weight)
        for name, (start, end) in self.slices.items():
            delta[start:end] = self.scaling * (self.lora_B[name] @ self.lora_A[name])
        return delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        if not self.enabled:
            return y
        h = self.dropout(x)
        # Low rank all the way: x A^T is [.., r], never an [out, in] matrix per step.
        parts, cursor = [], 0
        for name, (start, end) in sorted(self.slices.items(), key=lambda kv: kv[1][0]):
            if start > cursor:
                parts.append(y.new_zeros(*y.shape[:-1], start - cursor))
            parts.append((h @ self.lora_A[name].t()) @ self.lora_B[name].t() * self.scaling)
            cursor = end
        if cursor < self.out_features:
            parts.append(y.new_zeros(*y.shape[:-1], self.out_features - cursor))
        return y + torch.cat(parts, dim=-1)

    def merged(self) -> nn.Linear:
        """A plain nn.Linear with the adapters folded into its weight."""
        out = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(self.weight + self.delta_weight())
            if self.bias is not None:
                out.bias.copy_(self.bias)
        return out

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, rank={self.rank}, slices={list(self.slices)}"


def _mlps(mlp: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(path under the block, MLP) for a dense MLP, or for each expert (and the shared expert) of a
    mixture-of-experts layer: each expert is an MLP of the dense kind, so it takes the same adapters."""
    experts = getattr(mlp, "experts", None)
    if experts is None:
        yield "mlp", mlp
        return
    for j, expert in enumerate(experts):
        yield f"mlp.experts.{j}", expert
    if getattr(mlp, "shared", None) is not None:
        yield "mlp.shared", mlp.shared


def _block_targets(block: nn.Module, wanted: set[str]) -> Iterator[tuple[nn.Module, str, str, dict[str, tuple[int, int]]]]:
    """(parent module, its path in the block, attribute, slices) for each projection of one block
    that `wanted` selects. MoE routers are never adapted: they stay the base model's."""
    attn = block.attn
    q_dim, kv_dim, _ = attn.split_sizes
    bounds = {"q": (0, q_dim), "k": (q_dim, q_dim + kv_dim), "v": (q_dim + kv_dim, q_dim + 2 * kv_dim)}
    if "qkv" in wanted:
        yield attn, "attn", "qkv", {"all": (0, attn.qkv.out_features)}
    sliced = {s: bounds[s] for s in QKV_SLICES if s in wanted}
    if sliced:
        yield attn, "attn", "qkv", sliced
    if "o" in wanted:
        yield attn, "attn", "out", {"all": (0, attn.out.out_features)}
    for path, mlp in _mlps(block.mlp):
        for name in ("gate", "up", "down"):
            layer = getattr(mlp, name, None)
            if name in wanted and isinstance(layer, nn.Linear):
                yield mlp, path, name, {"all": (0, layer.out_features)}


def apply_lora(model: nn.Module, config: LoRAConfig) -> list[str]:
    """Wrap the chosen projections of every block with adapters, in place, and freeze every
    other parameter. Returns the adapted module names. Raises if a named target is absent."""
    if has_lora(model):
        raise ConfigError("the model already has LoRA adapters; merge them first (merge_and_unload)")
    wanted = set(TARGETS) - {"qkv"} if "all" in config.targets else set(config.targets)
    for p in model.parameters():
        p.requires_grad_(False)
    adapted, found = [], set()
    for i, block in enumerate(model.blocks):
        for parent, path, attr, slices in _block_targets(block, wanted):
            base = getattr(parent, attr)
            setattr(parent, attr, LoRALinear(base, slices, config.rank, config.alpha, config.dropout))
            adapted.append(f"blocks.{i}.{path}.{attr}")
            sliced = attr == "qkv" and "all" not in slices
            found.update(slices if sliced else {{"out": "o"}.get(attr, attr)})
    missing = [t for t in config.targets if t != "all" and t not in found]
    if missing:
        raise ConfigError(f"LoRA target {missing[0]!r} does not exist in this model (mlp={model.config.mlp})")
    return adapted


def lora_layers(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoRALinear) for m in model.modules())


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for _, m in lora_layers(model) for p in list(m.lora_A.values()) + list(m.lora_B.values())]


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter tensors alone (what an adapter file holds)."""
    return {k: v for k, v in model.state_dict().items() if ".lora_A." in k or ".lora_B." in k}


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put plain nn.Linear layers back, in place;
    all parameters become trainable again. Returns the model (now a plain TransformerLM)."""
    for name, layer in lora_layers(model):
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, attr, layer.merged())
    for p in model.parameters():
        p.requires_grad_(True)
    return model


@contextlib.contextmanager
def adapters_disabled(model: nn.Module):
    """Run the base model (adapters off), e.g. as the frozen reference for DPO/PPO without a copy."""
    layers = [m for _, m in lora_layers(model)]
    for m in layers:
        m.enabled = False
    try:
        yield model
    finally:
        for m in layers:
            m.enabled = True


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, a shared (tied) tensor counted once."""
    seen: dict[int, nn.Parameter] = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in seen.values())
    return sum(p.numel() for p in seen.values() if p.requires_grad), total


def parse_targets(text: str | Sequence[str]) -> tuple[str, ...]:
    return LoRAConfig(targets=text).targets
