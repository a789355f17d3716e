"""Qwen2 (`Qwen2ForCausalLM`): the Llama architecture with biases on q, k and v but not on o.

llmlab's attention_bias covers all four projections, so o gets a zero bias (the table's ABSENT
row). Imported models get family "llama"; a config whose family is "qwen2" exports as Qwen2."""

from __future__ import annotations

from typing import Any

from llmlab.config import ModelConfig
from llmlab.interop.families import llama
from llmlab.interop.family import ABSENT, Weight, register


def config_from_hf(hf: dict[str, Any], notes: list[str]) -> ModelConfig:
    window = hf.get("sliding_window")
    uses = hf.get("use_sliding_window", False) or "sliding_attention" in (hf.get("layer_types") or ())
    cfg = llama.config_from_hf(hf, notes, attention_bias=True, sliding_window=int(window) if window and uses else None)
    notes.append("Qwen2 has no output-projection bias; imported as a zero bias")
    return cfg


QWEN2 = register(llama.fixed_bias_family(
    "qwen2", "Qwen2", "Qwen2ForCausalLM", config_from_hf, attention_bias=True,
    hf_extra={"use_sliding_window": False}, weights=(Weight("blocks.{i}.attn.out.bias", (), ABSENT),),
))
