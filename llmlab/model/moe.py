"""Mixture of experts (Mixtral): a router picks each token's top-k experts, and the MLP output is
their outputs weighted by the renormalised router probabilities.

Dispatch is dropless: the (token, expert) assignments are sorted by expert, so each expert runs
once on its contiguous slice of tokens, however many there are (no capacity factor, nothing dropped).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmlab.config import ModelConfig
from llmlab.model.layers import make_mlp


@dataclass
class RouterStats:
    """One MoE layer's router losses and where its tokens went."""

    aux_loss: torch.Tensor  # load balancing: n_experts * sum_i f_i * P_i (1 when balanced)
    z_loss: torch.Tensor  # mean over tokens of logsumexp(router logits)^2
    utilisation: torch.Tensor  # f_i: the fraction of routed (token, expert) slots per expert [n_experts]


def route(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixtral's order: softmax over all experts (fp32), top-k, renormalise the k kept weights.
    Returns (probs [N, E], weights [N, k], experts [N, k])."""
    probs = F.softmax(logits.float(), dim=-1)
    weights, experts = probs.topk(k, dim=-1)
    return probs, weights / weights.sum(dim=-1, keepdim=True), experts


def router_stats(logits: torch.Tensor, probs: torch.Tensor, experts: torch.Tensor) -> RouterStats:
    n_experts = logits.size(-1)
    counts = torch.bincount(experts.reshape(-1), minlength=n_experts)
    f = counts.float() / experts.numel()
    aux = n_experts * (f * probs.mean(dim=0)).sum()  # f is not differentiable; P carries the gradient
    z = torch.logsumexp(logits.float(), dim=-1).pow(2).mean()
    return RouterStats(aux, z, f.detach())


class MoEMLP(nn.Module):
    """Top-k routed experts (each the dense model's MLP kind), plus an optional shared expert."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.k = config.experts_per_token
        self.router = nn.Linear(config.d_model, config.n_experts, bias=False)
        self.experts = nn.ModuleList(make_mlp(config) for _ in range(config.n_experts))
        self.shared = make_mlp(config) if config.shared_expert else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, RouterStats]:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        logits = self.router(x)
        probs, weights, experts = route(logits, self.k)
        flat = experts.reshape(-1)  # slot s = token s // k, its (s % k)-th choice
        order = flat.argsort(stable=True)
        tokens = order // self.k
        # The slice sizes are read on the host (one sync per layer): dropless dispatch needs them.
        counts = torch.bincount(flat, minlength=len(self.experts)).tolist()
        xs = x[tokens].split(counts)
        ys = [expert(part) for expert, part, n in zip(self.experts, xs, counts) if n]
        y = torch.cat(ys) * weights.reshape(-1)[order, None].to(x.dtype)
        out = torch.zeros_like(x).index_add_(0, tokens, y)
        if self.shared is not None:
            out = out + self.shared(x)
        return out.reshape(shape), router_stats(logits, probs, experts)
