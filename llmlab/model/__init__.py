"""Pure nn.Modules: no files, tokenizers or training in here."""

from llmlab.model.accounting import ParamCount, count_parameters, flops_per_token, kaplan_flops_per_token
from llmlab.model.kv_cache import KVCache
from llmlab.model.lesson import MultiHeadAttention, TransformerBlock
from llmlab.model.transformer import IGNORE_INDEX, ModelOutput, TransformerLM

__all__ = [
    "IGNORE_INDEX", "KVCache", "ModelOutput", "MultiHeadAttention", "ParamCount", "TransformerBlock",
    "TransformerLM", "count_parameters", "flops_per_token", "kaplan_flops_per_token",
]
