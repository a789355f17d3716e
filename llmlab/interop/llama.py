"""Llama family (`LlamaForCausalLM`, and the architecturally identical Mistral and Qwen2) <-> llmlab.

Hugging Face Llama applies RoPE in the same "rotate half" layout as llmlab, so q and k need no
permutation; llmlab fuses q, k, v into one projection, so they are concatenated (and split on export).
"""

from __future__ import annotations

from typing import Any

import torch

from llmlab.config import ModelConfig
from llmlab.interop.common import Unsupported, hf_field, zeros_like_bias
from llmlab.interop.weights import WeightSource

MODEL_TYPES = ("llama", "mistral", "qwen2")
ARCHITECTURE = "LlamaForCausalLM"
_BUFFERS = (".rotary_emb.inv_freq",)  # stored by some old checkpoints; recomputed from theta


# ---------------------------------------------------------------------------- import
def config_from_hf(hf: dict[str, Any], notes: list[str]) -> ModelConfig:
    model_type = hf.get("model_type", "llama")
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise Unsupported(f"hidden_act {act!r} (llmlab's gated MLP is SwiGLU, silu)")
    d_model = hf_field(hf, "hidden_size")
    n_head = hf_field(hf, "num_attention_heads")
    head_dim = hf.get("head_dim") or d_model // n_head
    if head_dim * n_head != d_model:
        raise Unsupported(f"head_dim {head_dim} x {n_head} heads != hidden_size {d_model}")
    theta = _rope_theta(hf)
    context = hf_field(hf, "max_position_embeddings")
    window = _sliding_window(hf, model_type)
    if window is not None and window < context:
        # With no sequence longer than the window, sliding-window attention is plain causal attention.
        notes.append(f"sliding-window attention ({window}): context_length limited to {window} so results are exact")
        context = window
    if model_type == "qwen2":
        # Qwen2 has biases on q, k, v but not on o; llmlab's attention_bias covers all four, so o gets zeros.
        attention_bias = True
        notes.append("Qwen2 has no output-projection bias; imported as a zero bias")
    else:
        attention_bias = bool(hf.get("attention_bias", False))
    return ModelConfig(
        vocab_size=hf_field(hf, "vocab_size"),
        context_length=context,
        n_layer=hf_field(hf, "num_hidden_layers"),
        n_head=n_head,
        n_kv_head=hf.get("num_key_value_heads") or n_head,
        d_model=d_model,
        d_ff=hf_field(hf, "intermediate_size"),
        position="rope",
        rope_theta=theta,
        norm="rmsnorm",
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        mlp="swiglu",
        attention_bias=attention_bias,
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


def _sliding_window(hf: dict[str, Any], model_type: str) -> int | None:
    window = hf.get("sliding_window")
    if not window:
        return None
    if model_type == "qwen2":
        uses = hf.get("use_sliding_window", False) or "sliding_attention" in (hf.get("layer_types") or ())
        return int(window) if uses else None
    if model_type == "mistral":
        return int(window)
    return None


def weights_from_hf(src: WeightSource, cfg: ModelConfig) -> dict[str, Any]:
    src.add_prefix_if_missing("model.", ("layers.", "embed_tokens.", "norm."))
    d, ff, V, hd = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.head_dim
    q_dim, kv_dim = cfg.n_head * hd, cfg.n_kv_head * hd
    qkv_bias = cfg.attention_bias
    out = {"embed.weight": src.take("model.embed_tokens.weight", (V, d))}
    for i in range(cfg.n_layer):
        h, b = f"model.layers.{i}.", f"blocks.{i}."
        a = h + "self_attn."
        out[b + "attn_norm.weight"] = src.take(h + "input_layernorm.weight", (d,))
        out[b + "attn.qkv.weight"] = torch.cat([
            src.take(a + "q_proj.weight", (q_dim, d)),
            src.take(a + "k_proj.weight", (kv_dim, d)),
            src.take(a + "v_proj.weight", (kv_dim, d)),
        ])
        out[b + "attn.out.weight"] = src.take(a + "o_proj.weight", (d, q_dim))
        if qkv_bias:
            out[b + "attn.qkv.bias"] = torch.cat([
                src.take(a + "q_proj.bias", (q_dim,)),
                src.take(a + "k_proj.bias", (kv_dim,)),
                src.take(a + "v_proj.bias", (kv_dim,)),
            ])
            o_bias = a + "o_proj.bias"
            out[b + "attn.out.bias"] = src.take(o_bias, (d,)) if src.has(o_bias) else zeros_like_bias(
                out[b + "attn.out.weight"]
            )
        out[b + "mlp_norm.weight"] = src.take(h + "post_attention_layernorm.weight", (d,))
        for name, shape in (("gate", (ff, d)), ("up", (ff, d)), ("down", (d, ff))):
            out[b + f"mlp.{name}.weight"] = src.take(h + f"mlp.{name}_proj.weight", shape)
            if cfg.mlp_bias:
                out[b + f"mlp.{name}.bias"] = src.take(h + f"mlp.{name}_proj.bias", (shape[0],))
    out["final_norm.weight"] = src.take("model.norm.weight", (d,))
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = src.take("lm_head.weight", (V, d))
    return out


def ignorable(name: str, cfg: ModelConfig) -> bool:
    return name.endswith(_BUFFERS) or (cfg.tie_embeddings and name == "lm_head.weight")


# ---------------------------------------------------------------------------- export
def export_problems(cfg: ModelConfig) -> list[str]:
    problems = []
    if cfg.position != "rope":
        problems.append(f"position is {cfg.position!r} (Llama uses RoPE)")
    if cfg.norm != "rmsnorm":
        problems.append(f"norm is {cfg.norm!r} (Llama uses RMSNorm)")
    if cfg.mlp != "swiglu":
        problems.append(f"mlp is {cfg.mlp!r} (Llama has a SwiGLU MLP)")
    return problems


def config_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    return {
        "architectures": [ARCHITECTURE],
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


def weights_to_hf(state: dict[str, Any], cfg: ModelConfig) -> dict[str, Any]:
    hd = cfg.head_dim
    sizes = [cfg.n_head * hd, cfg.n_kv_head * hd, cfg.n_kv_head * hd]
    out = {"model.embed_tokens.weight": state["embed.weight"], "model.norm.weight": state["final_norm.weight"]}
    for i in range(cfg.n_layer):
        h, b = f"model.layers.{i}.", f"blocks.{i}."
        a = h + "self_attn."
        out[h + "input_layernorm.weight"] = state[b + "attn_norm.weight"]
        out[h + "post_attention_layernorm.weight"] = state[b + "mlp_norm.weight"]
        # clone: safetensors refuses (older versions) or duplicates tensors that share storage.
        for part, tensor in zip("qkv", state[b + "attn.qkv.weight"].split(sizes)):
            out[a + f"{part}_proj.weight"] = tensor.clone()
        out[a + "o_proj.weight"] = state[b + "attn.out.weight"]
        if cfg.attention_bias:
            for part, tensor in zip("qkv", state[b + "attn.qkv.bias"].split(sizes)):
                out[a + f"{part}_proj.bias"] = tensor.clone()
            out[a + "o_proj.bias"] = state[b + "attn.out.bias"]
        for name in ("gate", "up", "down"):
            out[h + f"mlp.{name}_proj.weight"] = state[b + f"mlp.{name}.weight"]
            if cfg.mlp_bias:
                out[h + f"mlp.{name}_proj.bias"] = state[b + f"mlp.{name}.bias"]
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = state["lm_head.weight"]
    return out
