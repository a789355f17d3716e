"""Causal self-attention with grouped-query heads, RoPE and a KV cache.

The fast path is `torch.nn.functional.scaled_dot_product_attention` (flash / memory-efficient
kernels where the device has them). When attention weights are asked for, the same maths runs
explicitly so the weights can be returned.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmlab.config import ModelConfig
from llmlab.model.kv_cache import KVCache
from llmlab.model.layers import apply_rotary


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_kv_head = config.n_kv_head
        self.head_dim = config.head_dim
        self.use_rope = config.position == "rope"
        self.dropout = config.dropout
        q_dim, kv_dim = self.n_head * self.head_dim, self.n_kv_head * self.head_dim
        # One fused projection for queries, keys and values: a single matmul instead of three.
        self.qkv = nn.Linear(config.d_model, q_dim + 2 * kv_dim, bias=config.attention_bias)
        self.out = nn.Linear(q_dim, config.d_model, bias=config.attention_bias)
        self.split_sizes = (q_dim, kv_dim, kv_dim)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        layer_idx: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: [B, T, d]. mask: boolean [B or 1, 1, T, S] (True = may attend) or None for plain
        causal attention over x alone. Returns the output [B, T, d] and, if asked, weights [B, H, T, S]."""
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split(self.split_sizes, dim=-1)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if self.use_rope:
            cos, sin = rope
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if kv_cache is not None:
            k, v = kv_cache.update(layer_idx, k, v)
        if self.n_kv_head != self.n_head:
            # Grouped-query attention: each key/value head serves n_head / n_kv_head query heads.
            rep = self.n_head // self.n_kv_head
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)

        dropout = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            y, weights = attention_with_weights(q, k, v, mask, dropout)
        else:
            is_causal = mask is None and T > 1 and k.shape[2] == T
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal)
        y = y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)
        return self.out(y), weights


def attention_with_weights(q, k, v, mask, dropout: float = 0.0):
    """softmax(q k^T / sqrt(d) + mask) v, returning the weights too (the slow, inspectable path)."""
    T, S = q.shape[2], k.shape[2]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if mask is None:
        mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    y = F.dropout(weights, p=dropout) @ v
    return y, weights
