"""GPT-2 (`GPT2LMHeadModel`) <-> llmlab: config fields and weight names.

GPT-2 stores its linear layers as `Conv1D`, whose weight is [in, out], the transpose of
nn.Linear's [out, in]; its fused `c_attn` already holds q, k, v in our order.
"""

from __future__ import annotations

from typing import Any

from llmlab.config import ModelConfig
from llmlab.interop.common import Unsupported, hf_field, zeros_like_bias
from llmlab.interop.weights import WeightSource

MODEL_TYPES = ("gpt2",)
ARCHITECTURE = "GPT2LMHeadModel"
# The tanh-approximated GELU under its Hugging Face names (exact "gelu" differs by ~1e-3).
_GELU_TANH = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
# Causal-mask buffers that old checkpoints (the original OpenAI files) carry; not weights.
_BUFFERS = (".attn.bias", ".attn.masked_bias")


# ---------------------------------------------------------------------------- import
def config_from_hf(hf: dict[str, Any], notes: list[str]) -> ModelConfig:
    act = hf.get("activation_function", "gelu_new")
    if act in _GELU_TANH:
        mlp = "gelu"
    elif act == "relu":
        mlp = "relu"
    else:
        raise Unsupported(f"activation_function {act!r} (llmlab's GELU is the tanh approximation, gelu_new)")
    if not hf.get("scale_attn_weights", True):
        raise Unsupported("scale_attn_weights=false")
    if hf.get("scale_attn_by_inverse_layer_idx", False):
        raise Unsupported("scale_attn_by_inverse_layer_idx=true")
    if hf.get("add_cross_attention", False):
        raise Unsupported("cross-attention layers")
    d_model = hf_field(hf, "n_embd", "hidden_size")
    n_inner = hf.get("n_inner")
    return ModelConfig(
        vocab_size=hf_field(hf, "vocab_size"),
        context_length=hf_field(hf, "n_positions", "n_ctx", "max_position_embeddings"),
        n_layer=hf_field(hf, "n_layer", "num_hidden_layers"),
        n_head=hf_field(hf, "n_head", "num_attention_heads"),
        d_model=d_model,
        d_ff=n_inner if n_inner else 4 * d_model,
        position="learned",
        norm="layernorm",
        norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        mlp=mlp,
        attention_bias=True,
        mlp_bias=True,
        tie_embeddings=hf.get("tie_word_embeddings", True),
        dropout=hf.get("resid_pdrop", 0.0) or 0.0,
        init_std=hf.get("initializer_range", 0.02),
        family="gpt2",
    )


def weights_from_hf(src: WeightSource, cfg: ModelConfig) -> dict[str, Any]:
    src.add_prefix_if_missing("transformer.", ("h.", "wte.", "wpe.", "ln_f."))
    d, ff, V = cfg.d_model, cfg.d_ff, cfg.vocab_size
    out = {
        "embed.weight": src.take("transformer.wte.weight", (V, d)),
        "pos_embed.weight": src.take("transformer.wpe.weight", (cfg.context_length, d)),
    }
    for i in range(cfg.n_layer):
        h, b = f"transformer.h.{i}.", f"blocks.{i}."
        pairs = {
            "attn_norm": ("ln_1", None), "attn.qkv": ("attn.c_attn", (d, 3 * d)), "attn.out": ("attn.c_proj", (d, d)),
            "mlp_norm": ("ln_2", None), "mlp.up": ("mlp.c_fc", (d, ff)), "mlp.down": ("mlp.c_proj", (ff, d)),
        }
        for ours, (theirs, conv_shape) in pairs.items():
            if conv_shape is None:  # LayerNorm
                out[b + ours + ".weight"] = src.take(h + theirs + ".weight", (d,))
                out[b + ours + ".bias"] = src.take(h + theirs + ".bias", (d,))
            else:  # Conv1D: transpose to nn.Linear's layout
                out[b + ours + ".weight"] = src.take(h + theirs + ".weight", conv_shape).t()
                out[b + ours + ".bias"] = src.take(h + theirs + ".bias", (conv_shape[1],))
    out["final_norm.weight"] = src.take("transformer.ln_f.weight", (d,))
    out["final_norm.bias"] = src.take("transformer.ln_f.bias", (d,))
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = src.take("lm_head.weight", (V, d))
    return out


def ignorable(name: str, cfg: ModelConfig) -> bool:
    """Stored names that are not weights of the model, or duplicates of tied ones."""
    return name.endswith(_BUFFERS) or (cfg.tie_embeddings and name == "lm_head.weight")


# ---------------------------------------------------------------------------- export
def export_problems(cfg: ModelConfig) -> list[str]:
    problems = []
    if cfg.position != "learned":
        problems.append(f"position is {cfg.position!r} (GPT-2 learns absolute positions)")
    if cfg.norm != "layernorm":
        problems.append(f"norm is {cfg.norm!r} (GPT-2 uses LayerNorm)")
    if cfg.mlp not in ("gelu", "relu"):
        problems.append(f"mlp is {cfg.mlp!r} (GPT-2 has a two-layer GELU MLP)")
    if cfg.n_kv_head != cfg.n_head:
        problems.append(f"n_kv_head is {cfg.n_kv_head} < n_head {cfg.n_head} (GPT-2 has no grouped-query attention)")
    return problems


def config_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    return {
        "architectures": [ARCHITECTURE],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.context_length,
        "n_embd": cfg.d_model,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": cfg.d_ff,
        "activation_function": "gelu_new" if cfg.mlp == "gelu" else "relu",
        "layer_norm_epsilon": cfg.norm_eps,
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": cfg.dropout,
        "initializer_range": cfg.init_std,
        "scale_attn_weights": True,
        "tie_word_embeddings": cfg.tie_embeddings,
    }


def weights_to_hf(state: dict[str, Any], cfg: ModelConfig) -> dict[str, Any]:
    out = {
        "transformer.wte.weight": state["embed.weight"],
        "transformer.wpe.weight": state["pos_embed.weight"],
        "transformer.ln_f.weight": state["final_norm.weight"],
        "transformer.ln_f.bias": state["final_norm.bias"],
    }
    for i in range(cfg.n_layer):
        h, b = f"transformer.h.{i}.", f"blocks.{i}."
        for ours, theirs in (("attn_norm", "ln_1"), ("mlp_norm", "ln_2")):
            out[h + theirs + ".weight"] = state[b + ours + ".weight"]
            out[h + theirs + ".bias"] = state[b + ours + ".bias"]
        for ours, theirs in (("attn.qkv", "attn.c_attn"), ("attn.out", "attn.c_proj"),
                             ("mlp.up", "mlp.c_fc"), ("mlp.down", "mlp.c_proj")):
            weight = state[b + ours + ".weight"]
            out[h + theirs + ".weight"] = weight.t()
            # GPT-2 always has biases; a bias-free model exports exactly with zero ones.
            out[h + theirs + ".bias"] = state.get(b + ours + ".bias", zeros_like_bias(weight))
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = state["lm_head.weight"]
    return out
