"""Model configuration: one dataclass that describes GPT-2-family and Llama-family models, and
the named presets of the model zoo (tiny CPU models up to the GPT-3 paper's sizes).

A config is plain data: it round-trips through JSON/YAML (`to_dict`/`from_dict`) and is saved as
`config.json` in every checkpoint, so a run can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from llmlab.errors import ConfigError

POSITION_KINDS = ("learned", "rope")
NORM_KINDS = ("layernorm", "rmsnorm")
MLP_KINDS = ("gelu", "swiglu", "relu")
# Per-layer choices: a pattern of these, repeated over the layers (see ModelConfig.layer_kinds).
ATTENTION_KINDS = ("full", "sliding")
MLP_LAYER_KINDS = ("dense", "moe")
# The target id that losses skip (PyTorch's cross_entropy default): prompts, padding, packing gaps.
# Here, below both model/ and data/, so every layer names the one constant.
IGNORE_INDEX = -100


@dataclass
class ModelConfig:
    """Architecture of a decoder-only transformer language model.

    GPT-2 family: position="learned", norm="layernorm", mlp="gelu", biases on, tied embeddings.
    Llama family: position="rope", norm="rmsnorm", mlp="swiglu", no biases, untied head, and
    grouped-query attention when n_kv_head < n_head.
    """

    vocab_size: int = 2048
    context_length: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int | None = None  # None: same as n_head (multi-head attention); fewer: GQA
    d_model: int = 128
    d_ff: int | None = None  # None: 4*d_model for gelu/relu, ~8/3*d_model (rounded) for swiglu
    position: str = "rope"
    rope_theta: float = 10000.0
    norm: str = "rmsnorm"
    norm_eps: float = 1e-5
    mlp: str = "swiglu"
    attention_bias: bool = False
    mlp_bias: bool = False
    tie_embeddings: bool = True
    dropout: float = 0.0
    init_std: float = 0.02
    family: str = "llama"  # the Hugging Face family export-hf writes (gpt2, llama, mistral, qwen2)
    # Sliding-window attention (Mistral): a query sees itself and the sliding_window - 1 positions
    # before it, so generation keeps only that many keys per layer. layer_attention chooses per
    # layer ("full" or "sliding"), as a pattern repeated over the layers (["sliding", "full"]
    # alternates); None: every layer slides when sliding_window is set.
    sliding_window: int | None = None
    layer_attention: list[str] | None = None
    # Mixture of experts (Mixtral): n_experts > 0 makes MoE layers, each routing every token to its
    # experts_per_token best experts (each an MLP of the `mlp` kind and d_ff); shared_expert adds a
    # dense MLP every token goes through. The trainer adds router_aux_loss_coef * load-balancing
    # loss + router_z_loss_coef * z-loss. layer_mlp ("dense" or "moe") is a per-layer pattern like
    # layer_attention; None: every layer is MoE when n_experts > 0.
    n_experts: int = 0
    experts_per_token: int = 2
    shared_expert: bool = False
    router_aux_loss_coef: float = 0.01
    router_z_loss_coef: float = 0.001
    layer_mlp: list[str] | None = None

    def __post_init__(self) -> None:
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.d_ff is None:
            self.d_ff = default_d_ff(self.d_model, self.mlp)
        self.validate()

    # ------------------------------------------------------------------ derived
    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(f"invalid model config: {msg}")

        need(self.vocab_size > 0, f"vocab_size must be positive, got {self.vocab_size}")
        need(self.context_length > 0, f"context_length must be positive, got {self.context_length}")
        need(self.n_layer > 0, f"n_layer must be positive, got {self.n_layer}")
        need(self.n_head > 0, f"n_head must be positive, got {self.n_head}")
        need(self.d_model % self.n_head == 0, f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        need(
            self.n_kv_head > 0 and self.n_head % self.n_kv_head == 0,
            f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})",
        )
        need(self.position in POSITION_KINDS, f"position must be one of {POSITION_KINDS}, got {self.position!r}")
        need(self.norm in NORM_KINDS, f"norm must be one of {NORM_KINDS}, got {self.norm!r}")
        need(self.mlp in MLP_KINDS, f"mlp must be one of {MLP_KINDS}, got {self.mlp!r}")
        need(self.position != "rope" or self.head_dim % 2 == 0, "RoPE needs an even head dimension")
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        need(self.sliding_window is None or self.sliding_window > 0,
             f"sliding_window must be positive, got {self.sliding_window}")
        kinds = self.layer_kinds("layer_attention", ATTENTION_KINDS)  # checks the pattern
        need(self.sliding_window is not None or "sliding" not in kinds,
             "layer_attention names sliding layers but sliding_window is not set")
        need(self.n_experts >= 0, f"n_experts must be 0 (dense) or positive, got {self.n_experts}")
        need(self.n_experts == 0 or 1 <= self.experts_per_token <= self.n_experts,
             f"experts_per_token must be in 1..n_experts ({self.n_experts}), got {self.experts_per_token}")
        need(self.router_aux_loss_coef >= 0 and self.router_z_loss_coef >= 0,
             "router_aux_loss_coef and router_z_loss_coef must be non-negative")
        mlps = self.layer_kinds("layer_mlp", MLP_LAYER_KINDS)  # checks the pattern
        need(self.n_experts > 0 or "moe" not in mlps, "layer_mlp names moe layers but n_experts is 0")

    def mlp_kinds(self) -> list[str]:
        """Per layer: "moe" (routed experts) or "dense"."""
        return self.layer_kinds("layer_mlp", MLP_LAYER_KINDS, "moe" if self.n_experts > 0 else "dense")

    def layer_kinds(self, name: str, choices: tuple[str, ...], default: str | None = None) -> list[str]:
        """The per-layer choices of pattern field `name`: the pattern repeated over the n_layer
        layers, or `default` (else the first choice) for every layer when the field is None. A
        per-layer option (attention kind, MLP kind) is one list field plus a call here."""
        pattern = getattr(self, name)
        if pattern is None:
            return [default or choices[0]] * self.n_layer
        if isinstance(pattern, str) or not pattern or len(pattern) > self.n_layer:
            raise ConfigError(f"invalid model config: {name} must be a list of 1 to n_layer ({self.n_layer}) of "
                              f"{', '.join(choices)}, got {pattern!r}")
        bad = [p for p in pattern if p not in choices]
        if bad:
            raise ConfigError(f"invalid model config: {name} entries must be one of {choices}, got {bad[0]!r}")
        return [pattern[i % len(pattern)] for i in range(self.n_layer)]

    def attention_windows(self) -> list[int | None]:
        """Per layer: the sliding window, or None for full causal attention."""
        default = "full" if self.sliding_window is None else "sliding"
        kinds = self.layer_kinds("layer_attention", ATTENTION_KINDS, default)
        return [self.sliding_window if k == "sliding" else None for k in kinds]

    # ------------------------------------------------------------------ IO
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        if data.get("block") == "transformer":
            # Written before the field was removed (it held the one kind there was, and nothing read
            # it); a block's parts are chosen by position, norm, mlp and the attention fields.
            data = {k: v for k, v in data.items() if k != "block"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config field(s): {', '.join(unknown)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        return cls.from_dict(load_config_file(path))

    def replace(self, **changes: Any) -> "ModelConfig":
        data = self.to_dict()
        # Derived defaults must be recomputed when what they derive from changes.
        if "d_model" in changes or "mlp" in changes:
            data["d_ff"] = None
        if "n_head" in changes and "n_kv_head" not in changes and data["n_kv_head"] == data["n_head"]:
            data["n_kv_head"] = None
        data.update(changes)
        return ModelConfig.from_dict(data)


def default_d_ff(d_model: int, mlp: str) -> int:
    if mlp == "swiglu":
        # Llama: 2/3 of 4*d keeps the parameter count of a 4*d GELU MLP; round up to a multiple of 64.
        hidden = int(2 * 4 * d_model / 3)
        return 64 * ((hidden + 63) // 64)
    return 4 * d_model


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML mapping, with a clear error on a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json/yaml both raise their own types
        raise ConfigError(f"cannot parse {path}: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, not {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------- presets
# Small llama-style models for a CPU; sizes are total parameters with the default 2048/4096 vocab.
_LLAMA_STYLE = dict(position="rope", norm="rmsnorm", mlp="swiglu", attention_bias=False, mlp_bias=False, family="llama")
_GPT2_STYLE = dict(
    position="learned", norm="layernorm", mlp="gelu", attention_bias=True, mlp_bias=True,
    tie_embeddings=True, family="gpt2",
)


def _gpt3(n_layer: int, d_model: int, n_head: int) -> dict[str, Any]:
    # GPT-3 paper, Table 2.1: context 2048, GPT-2's 50257-token vocabulary, dense attention.
    return dict(_GPT2_STYLE, vocab_size=50257, context_length=2048, n_layer=n_layer, d_model=d_model, n_head=n_head)


def _gpt2(n_layer: int, d_model: int, n_head: int) -> dict[str, Any]:
    return dict(_GPT2_STYLE, vocab_size=50257, context_length=1024, n_layer=n_layer, d_model=d_model, n_head=n_head)


PRESETS: dict[str, dict[str, Any]] = {
    # CPU zoo (tied embeddings keep the small ones small)
    "tiny": dict(_LLAMA_STYLE, vocab_size=2048, context_length=256, n_layer=4, d_model=128, n_head=4, n_kv_head=2),
    "mini": dict(_LLAMA_STYLE, vocab_size=4096, context_length=256, n_layer=6, d_model=192, n_head=6, n_kv_head=3),
    "small": dict(_LLAMA_STYLE, vocab_size=4096, context_length=512, n_layer=8, d_model=320, n_head=8, n_kv_head=4),
    "base": dict(_LLAMA_STYLE, vocab_size=4096, context_length=512, n_layer=10, d_model=512, n_head=8, n_kv_head=4),
    # The benchmark's GPT-2 configuration (issue: model throughput vs transformers).
    "gpt2-12m": dict(_GPT2_STYLE, vocab_size=4096, context_length=256, n_layer=6, d_model=384, n_head=6),
    # GPT-2 family
    "gpt2": _gpt2(12, 768, 12),
    "gpt2-medium": _gpt2(24, 1024, 16),
    "gpt2-large": _gpt2(36, 1280, 20),
    "gpt2-xl": _gpt2(48, 1600, 25),
    # GPT-3 paper sizes
    "gpt3-small": _gpt3(12, 768, 12),
    "gpt3-medium": _gpt3(24, 1024, 16),
    "gpt3-large": _gpt3(24, 1536, 16),
    # The paper's table lists 24 heads for XL and d_model 5140 for 13B, neither consistent with its
    # d_head of 128; we keep d_head = 128 and the parameter totals (1.3B, 13B).
    "gpt3-xl": _gpt3(24, 2048, 16),
    "gpt3-2.7b": _gpt3(32, 2560, 32),
    "gpt3-6.7b": _gpt3(32, 4096, 32),
    "gpt3-13b": _gpt3(40, 5120, 40),
    "gpt3-175b": _gpt3(96, 12288, 96),
    # Llama family
    "llama2-7b": dict(
        _LLAMA_STYLE, vocab_size=32000, context_length=4096, n_layer=32, d_model=4096, n_head=32,
        d_ff=11008, norm_eps=1e-5, tie_embeddings=False,
    ),
    "llama3-8b": dict(
        _LLAMA_STYLE, vocab_size=128256, context_length=8192, n_layer=32, d_model=4096, n_head=32, n_kv_head=8,
        d_ff=14336, rope_theta=500000.0, tie_embeddings=False,
    ),
}

# The parameter counts the GPT-3 paper reports (Table 2.1), for checking our accounting.
GPT3_PAPER_PARAMS = {
    "gpt3-small": 125e6, "gpt3-medium": 350e6, "gpt3-large": 760e6, "gpt3-xl": 1.3e9,
    "gpt3-2.7b": 2.7e9, "gpt3-6.7b": 6.7e9, "gpt3-13b": 13.0e9, "gpt3-175b": 175.0e9,
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """The named preset as a ModelConfig, with optional field overrides."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    base = ModelConfig(**PRESETS[name])
    return base.replace(**overrides) if overrides else base
