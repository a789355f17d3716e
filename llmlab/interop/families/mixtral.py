"""Mixtral (`MixtralForCausalLM`): Mistral's architecture with every MLP a mixture of experts.

The table uses the layout Mixtral checkpoints are stored in (`block_sparse_moe.gate` and
`experts.{e}.w1/w2/w3`, gate/down/up), which transformers 5 also writes from its fused in-memory
experts and converts back on load, so one layout serves both versions."""

from __future__ import annotations

import dataclasses
from typing import Any

from llmlab.config import ModelConfig
from llmlab.interop.common import hf_field
from llmlab.interop.families import llama, mistral
from llmlab.interop.family import Weight, register

_M = "model.layers.{i}.block_sparse_moe."

# transformers' load-balancing loss is k times llmlab's (its f_i sum to k, llmlab's to 1), so the
# coefficient is scaled by k to give the same training loss.


def config_from_hf(hf: dict[str, Any], notes: list[str]) -> ModelConfig:
    cfg = mistral.config_from_hf(hf, notes)
    k = hf_field(hf, "num_experts_per_tok")
    return cfg.replace(
        family="mixtral", n_experts=hf_field(hf, "num_local_experts"), experts_per_token=k,
        router_aux_loss_coef=float(hf.get("router_aux_loss_coef", 0.001)) * k,
    )


def export_problems(cfg: ModelConfig) -> list[str]:
    found = _BASE.export_problems(cfg)
    if not cfg.n_experts:
        found.append("n_experts is 0 (Mixtral's MLPs are mixtures of experts; export as family llama or mistral)")
    elif "dense" in cfg.mlp_kinds():
        found.append("layer_mlp has dense layers (every Mixtral layer is a mixture of experts)")
    if cfg.shared_expert:
        found.append("shared_expert is set (Mixtral has no shared expert)")
    return found


def config_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    k = cfg.experts_per_token
    return {**_BASE.config_to_hf(cfg), "num_local_experts": cfg.n_experts, "num_experts_per_tok": k,
            "router_aux_loss_coef": cfg.router_aux_loss_coef / k, "router_jitter_noise": 0.0,
            "output_router_logits": False}


_BASE = llama.fixed_bias_family(
    "mixtral", "Mixtral", "MixtralForCausalLM", config_from_hf, attention_bias=False, hf_extra={},
    windows="uniform", moe=True, weights=(
        Weight("blocks.{i}.mlp.router.weight", _M + "gate.weight"),
        Weight("blocks.{i}.mlp.experts.{e}.gate.weight", _M + "experts.{e}.w1.weight"),
        Weight("blocks.{i}.mlp.experts.{e}.down.weight", _M + "experts.{e}.w2.weight"),
        Weight("blocks.{i}.mlp.experts.{e}.up.weight", _M + "experts.{e}.w3.weight"),
    ),
)
MIXTRAL = register(dataclasses.replace(_BASE, config_to_hf=config_to_hf, export_problems=export_problems))
