"""Qwen2 (`Qwen2ForCausalLM`): the Llama architecture with biases on q, k and v but not on o.

llmlab's attention_bias covers all four projections, so o gets a zero bias (the table's ABSENT
row). Imported models get family "llama", or "qwen2" when they use sliding windows, which Qwen2
chooses per layer (`layer_types`: llmlab's `layer_attention`); a config whose family is "qwen2"
exports as Qwen2."""

from __future__ import annotations

from typing import Any

from llmlab.config import ModelConfig
from llmlab.interop.common import Unsupported
from llmlab.interop.families import llama
from llmlab.interop.family import ABSENT, Weight, register

_KINDS = {"full_attention": "full", "sliding_attention": "sliding"}


def config_from_hf(hf: dict[str, Any], notes: list[str]) -> ModelConfig:
    cfg = llama.config_from_hf(hf, notes, attention_bias=True)
    notes.append("Qwen2 has no output-projection bias; imported as a zero bias")
    window = hf.get("sliding_window")
    if not (hf.get("use_sliding_window", False) and window and int(window) < cfg.context_length):
        return cfg  # transformers ignores the window unless use_sliding_window is set
    # transformers 5 lists each layer's kind; older configs: layers from max_window_layers on slide.
    types = hf.get("layer_types") or [
        "sliding_attention" if i >= hf.get("max_window_layers", 28) else "full_attention" for i in range(cfg.n_layer)
    ]
    unknown = sorted(set(types) - set(_KINDS))
    if unknown:
        raise Unsupported(f"layer type {unknown[0]!r}")
    if "sliding_attention" not in types:
        return cfg
    notes.append(f"sliding-window attention: {types.count('sliding_attention')} of {len(types)} layers attend to "
                 f"the last {window} positions")
    return cfg.replace(sliding_window=int(window), layer_attention=[_KINDS[t] for t in types], family="qwen2")


QWEN2 = register(llama.fixed_bias_family(
    "qwen2", "Qwen2", "Qwen2ForCausalLM", config_from_hf, attention_bias=True,
    hf_extra={"use_sliding_window": False}, weights=(Weight("blocks.{i}.attn.out.bias", (), ABSENT),),
    windows="per_layer",
))
