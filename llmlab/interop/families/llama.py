"""Llama (`LlamaForCausalLM`) <-> llmlab; its config mapping and weight table also serve the
architecturally identical Mistral and Qwen2 (mistral.py, qwen2.py).

Hugging Face Llama applies RoPE in the same "rotate half" layout as llmlab, so q and k need no
permutation; llmlab fuses q, k, v into one projection, so they are concatenated (and split on export).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from llmlab.config import ModelConfig
from llmlab.interop.common import Unsupported, hf_field
from llmlab.interop.family import Concat, Family, Weight, qkv_sizes, register

_L = "model.layers.{i}."
_QKV = Concat(qkv_sizes)


def config_from_hf(hf: dict[str, Any], notes: list[str], *, attention_bias: bool | None = None) -> ModelConfig:
    """The config of a Llama-architecture model. attention_bias: None reads the config's. (Sliding
    windows are Mistral's and Qwen2's: mistral.py, qwen2.py.)"""
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise Unsupported(f"hidden_act {act!r} (llmlab's gated MLP is SwiGLU, silu)")
    d_model = hf_field(hf, "hidden_size")
    n_head = hf_field(hf, "num_attention_heads")
    head_dim = hf.get("head_dim") or d_model // n_head
    if head_dim * n_head != d_model:
        raise Unsupported(f"head_dim {head_dim} x {n_head} heads != hidden_size {d_model}")
    return ModelConfig(
        vocab_size=hf_field(hf, "vocab_size"),
        context_length=hf_field(hf, "max_position_embeddings"),
        n_layer=hf_field(hf, "num_hidden_layers"),
        n_head=n_head,
        n_kv_head=hf.get("num_key_value_heads") or n_head,
        d_model=d_model,
        d_ff=hf_field(hf, "intermediate_size"),
        position="rope",
        rope_theta=_rope_theta(hf),
        norm="rmsnorm",
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        mlp="swiglu",
        attention_bias=bool(hf.get("attention_bias", False)) if attention_bias is None else attention_bias,
        mlp_bias=bool(hf.get("mlp_bias", False)),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        dropout=hf.get("attention_dropout", 0.0) or 0.0,
        init_std=hf.get("initializer_range", 0.02),
        family="llama",
    )


def _rope_theta(hf: dict[str, Any]) -> float:
    # transformers 5 keeps RoPE settings in rope_parameters; 4.x in rope_theta + rope_scaling.
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if any(isinstance(v, dict) for v in params.values()):
        raise Unsupported("per-layer-type RoPE parameters")
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in (None, "default"):
        raise Unsupported(f"RoPE scaling {rope_type!r} (llmlab implements plain RoPE with a theta)")
    partial = params.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0))
    if partial not in (None, 1, 1.0):
        raise Unsupported(f"partial_rotary_factor {partial}")
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def slides(cfg: ModelConfig) -> bool:
    """Whether some layer's window is shorter than the context (otherwise it hides nothing)."""
    return any(w is not None and w < cfg.context_length for w in cfg.attention_windows())


def export_problems(cfg: ModelConfig, *, windows: str | None = None, moe: bool = False) -> list[str]:
    """windows: how the family expresses sliding windows: None (it cannot), "uniform" (one window on
    every layer, Mistral) or "per_layer" (a window and layer_types, Qwen2). moe: whether it has
    experts (Mixtral checks those itself)."""
    problems = []
    if cfg.n_experts and not moe:
        problems.append(f"n_experts is {cfg.n_experts} (this layout has dense MLPs; export as family mixtral)")
    if slides(cfg) and windows is None:
        problems.append(f"sliding_window is {cfg.sliding_window} (this layout attends to the whole context; "
                        "export as family mistral or qwen2)")
    elif slides(cfg) and windows == "uniform" and len(set(cfg.attention_windows())) > 1:
        problems.append("layer_attention mixes full and sliding layers (Mistral slides every layer; Qwen2 "
                        "can mix them)")
    if cfg.position != "rope":
        problems.append(f"position is {cfg.position!r} (Llama uses RoPE)")
    if cfg.norm != "rmsnorm":
        problems.append(f"norm is {cfg.norm!r} (Llama uses RMSNorm)")
    if cfg.mlp != "swiglu":
        problems.append(f"mlp is {cfg.mlp!r} (Llama has a SwiGLU MLP)")
    return problems


def config_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    return {
        "architectures": [LLAMA.architecture],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.d_ff,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_kv_head,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.context_length,
        "rms_norm_eps": cfg.norm_eps,
        # Both spellings: transformers 5 reads rope_parameters, 4.x reads rope_theta.
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "attention_bias": cfg.attention_bias,
        "mlp_bias": cfg.mlp_bias,
        "attention_dropout": cfg.dropout,
        "initializer_range": cfg.init_std,
        "tie_word_embeddings": cfg.tie_embeddings,
    }


# {p}: weight or bias (which exist follows from the config's attention_bias and mlp_bias).
LLAMA = register(Family(
    "llama", "Llama", model_types=("llama",), architecture="LlamaForCausalLM",
    config_from_hf=config_from_hf, config_to_hf=config_to_hf, export_problems=export_problems,
    base_prefix="model.", buffers=(".rotary_emb.inv_freq",),  # old checkpoints store it; recomputed from theta
    weights=(
        Weight("embed.weight", "model.embed_tokens.weight"),
        Weight("blocks.{i}.attn_norm.weight", _L + "input_layernorm.weight"),
        Weight("blocks.{i}.attn.qkv.{p}", tuple(_L + f"self_attn.{x}_proj.{{p}}" for x in "qkv"), _QKV),
        Weight("blocks.{i}.attn.out.{p}", _L + "self_attn.o_proj.{p}"),
        Weight("blocks.{i}.mlp_norm.weight", _L + "post_attention_layernorm.weight"),
        Weight("blocks.{i}.mlp.{proj}.{p}", _L + "mlp.{proj}_proj.{p}"),  # gate, up, down
        Weight("final_norm.weight", "model.norm.weight"),
        Weight("lm_head.weight", "lm_head.weight"),
    ),
))


def fixed_bias_family(
    name: str, title: str, architecture: str, config_from_hf: Callable[[dict[str, Any], list[str]], ModelConfig], *,
    attention_bias: bool, hf_extra: dict[str, Any], weights: tuple[Weight, ...] = (), windows: str | None = None,
    moe: bool = False,
) -> Family:
    """A family with Llama's architecture whose biases are fixed rather than configured (Mistral:
    none; Qwen2: on q, k, v): Llama's bundle with its own names, import mapping and export checks.
    `weights` are rows that take precedence over Llama's; windows: how config.json carries sliding
    windows ("uniform": Mistral's `sliding_window`; "per_layer": Qwen2's, plus `layer_types`)."""

    def problems(cfg: ModelConfig) -> list[str]:
        found = export_problems(cfg, windows=windows, moe=moe)
        if cfg.attention_bias != attention_bias:
            found.append(f"attention_bias is {cfg.attention_bias} ({title}'s is {attention_bias})")
        if cfg.mlp_bias:
            found.append(f"mlp_bias is set ({title}'s MLP has no biases)")
        return found

    def to_hf(cfg: ModelConfig) -> dict[str, Any]:
        hf = {k: v for k, v in config_to_hf(cfg).items() if k not in ("attention_bias", "mlp_bias")}
        hf = {**hf, "architectures": [architecture], "model_type": name, **hf_extra}
        on = slides(cfg)
        if windows == "uniform":
            hf["sliding_window"] = cfg.sliding_window if on else None
        elif windows == "per_layer":
            hf["use_sliding_window"], hf["sliding_window"] = on, cfg.sliding_window if on else None
            hf["layer_types"] = ["sliding_attention" if on and w else "full_attention" for w in cfg.attention_windows()]
        return hf

    return dataclasses.replace(
        LLAMA, name=name, title=title, model_types=(name,), architecture=architecture, config_from_hf=config_from_hf,
        config_to_hf=to_hf, export_problems=problems, weights=weights + LLAMA.weights,
    )
