"""Mistral (`MistralForCausalLM`): the Llama architecture without biases, plus a sliding window.

Imported models get family "llama" (llmlab runs them exactly as Llama, see the window note in
llama.config_from_hf); a config whose family is "mistral" exports as MistralForCausalLM."""

from __future__ import annotations

from typing import Any

from llmlab.config import ModelConfig
from llmlab.interop.families import llama
from llmlab.interop.family import register


def config_from_hf(hf: dict[str, Any], notes: list[str]) -> ModelConfig:
    window = hf.get("sliding_window")
    return llama.config_from_hf(hf, notes, sliding_window=int(window) if window else None)


MISTRAL = register(llama.fixed_bias_family(
    "mistral", "Mistral", "MistralForCausalLM", config_from_hf, attention_bias=False,
    hf_extra={"sliding_window": None},  # llmlab attends to the whole context
))
