"""Mistral (`MistralForCausalLM`): the Llama architecture without biases, plus a sliding window.

A window shorter than the context is imported as llmlab's sliding_window (every layer slides,
family "mistral"); without one the model is plain Llama (family "llama"). A config whose family
is "mistral" exports as MistralForCausalLM, with its window."""

from __future__ import annotations

from typing import Any

from llmlab.config import ModelConfig
from llmlab.interop.families import llama
from llmlab.interop.family import register


def config_from_hf(hf: dict[str, Any], notes: list[str]) -> ModelConfig:
    cfg = llama.config_from_hf(hf, notes)
    window = hf.get("sliding_window")
    if window and int(window) < cfg.context_length:
        cfg = cfg.replace(sliding_window=int(window), family="mistral")
        notes.append(f"sliding-window attention: each token attends to the last {window} positions")
    return cfg


MISTRAL = register(llama.fixed_bias_family(
    "mistral", "Mistral", "MistralForCausalLM", config_from_hf, attention_bias=False, hf_extra={},
    windows="uniform",
))
