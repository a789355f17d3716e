"""llmlab: a complete, hackable large-language-model lab.

    import llmlab
    model, tokenizer = llmlab.load("runs/quickstart/run/checkpoint")
    print(llmlab.generate_text(model, tokenizer, "Once upon a time", max_length=60))

Names are imported lazily, so `import llmlab` (and the CLI's --help) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "ModelConfig": "llmlab.config",
    "preset": "llmlab.config",
    "PRESETS": "llmlab.config",
    "TransformerLM": "llmlab.model",
    "MultiHeadAttention": "llmlab.model",
    "TransformerBlock": "llmlab.model",
    "KVCache": "llmlab.model",
    "count_parameters": "llmlab.model",
    "flops_per_token": "llmlab.model",
    "Tokenizer": "llmlab.tokenizer",
    "load": "llmlab.checkpoint",
    "save_checkpoint": "llmlab.checkpoint",
    "LLMLabError": "llmlab.errors",
    # the lesson's capabilities and applications (llmlab/infer)
    "generate_text": "llmlab.infer",
    "Engine": "llmlab.infer",
    "GenerationConfig": "llmlab.infer",
    "LLMChatbot": "llmlab.infer",
    "few_shot_classification": "llmlab.infer",
    "chain_of_thought_reasoning": "llmlab.infer",
    "ContentGenerator": "llmlab.infer",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
