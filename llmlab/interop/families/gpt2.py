"""GPT-2 (`GPT2LMHeadModel`) <-> llmlab: config fields and weight names.

GPT-2 stores its linear layers as `Conv1D`, whose weight is [in, out], the transpose of
nn.Linear's [out, in]; its fused `c_attn` already holds q, k, v in our order.
"""

from __future__ import annotations

from typing import Any

from llmlab.config import ModelConfig
from llmlab.interop.common import Unsupported, hf_field
from llmlab.interop.family import TRANSPOSE, Family, Weight, register

# The tanh-approximated GELU under its Hugging Face names (exact "gelu" differs by ~1e-3).
_GELU_TANH = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
_H = "transformer.h.{i}."


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


def export_problems(cfg: ModelConfig) -> list[str]:
    problems = []
    if cfg.position != "learned":
        problems.append(f"position is {cfg.position!r} (GPT-2 learns absolute positions)")
    if cfg.norm != "layernorm":
        problems.append(f"norm is {cfg.norm!r} (GPT-2 uses LayerNorm)")
    if cfg.n_experts:
        problems.append(f"n_experts is {cfg.n_experts} (GPT-2 has dense MLPs)")
    if cfg.mlp not in ("gelu", "relu"):
        problems.append(f"mlp is {cfg.mlp!r} (GPT-2 has a two-layer GELU MLP)")
    if cfg.n_kv_head != cfg.n_head:
        problems.append(f"n_kv_head is {cfg.n_kv_head} < n_head {cfg.n_head} (GPT-2 has no grouped-query attention)")
    return problems


def config_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    return {
        "architectures": [GPT2.architecture],
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


# {p}: weight or bias. Conv1D weights are [in, out], so TRANSPOSE; on a 1-D bias it changes nothing.
GPT2 = register(Family(
    "gpt2", "GPT-2", model_types=("gpt2",), architecture="GPT2LMHeadModel",
    config_from_hf=config_from_hf, config_to_hf=config_to_hf, export_problems=export_problems,
    base_prefix="transformer.",  # the original OpenAI-converted files say "h.0...", not "transformer.h.0..."
    buffers=(".attn.bias", ".attn.masked_bias"),  # causal-mask buffers of old checkpoints
    weights=(
        Weight("embed.weight", "transformer.wte.weight"),
        Weight("pos_embed.weight", "transformer.wpe.weight"),
        Weight("blocks.{i}.attn_norm.{p}", _H + "ln_1.{p}"),
        Weight("blocks.{i}.attn.qkv.{p}", _H + "attn.c_attn.{p}", TRANSPOSE),  # q, k, v fused in our order
        Weight("blocks.{i}.attn.out.{p}", _H + "attn.c_proj.{p}", TRANSPOSE),
        Weight("blocks.{i}.mlp_norm.{p}", _H + "ln_2.{p}"),
        Weight("blocks.{i}.mlp.up.{p}", _H + "mlp.c_fc.{p}", TRANSPOSE),
        Weight("blocks.{i}.mlp.down.{p}", _H + "mlp.c_proj.{p}", TRANSPOSE),
        Weight("final_norm.{p}", "transformer.ln_f.{p}"),
        Weight("lm_head.weight", "lm_head.weight"),
    ),
))
