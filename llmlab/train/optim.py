"""AdamW with decoupled weight decay on matrices only, and the learning-rate schedules."""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay the weight matrices of linear layers; never norms, biases or embeddings.

    Embeddings are excluded because decaying them pulls rare tokens' vectors to zero; a tied
    output head shares the embedding's tensor and so follows it.
    """
    embedding_params = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay, seen = [], [], set()
    for _, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        if param.dim() >= 2 and id(param) not in embedding_params:
            decay.append(param)
        else:
            no_decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, betas=(0.9, 0.95), eps: float = 1e-8):
    device = next(model.parameters()).device
    # The fused CUDA kernel updates all parameters in one launch; on the CPU the default
    # (foreach) implementation is already vectorised.
    extra = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=lr, betas=betas, eps=eps, **extra)


def lr_at(
    step: int, *, max_lr: float, total_steps: int, warmup_steps: int, schedule: str = "cosine",
    min_lr_ratio: float = 0.1, decay_fraction: float = 0.2,
) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup, then
    cosine: half a cosine from max_lr down to min_lr at the last step;
    wsd: warmup-stable-decay, constant until the last decay_fraction of steps, then linear to min_lr;
    constant: max_lr after warmup."""
    min_lr = max_lr * min_lr_ratio
    if warmup_steps > 0 and step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return max_lr
    if schedule == "wsd":
        decay_steps = max(1, int(round(total_steps * decay_fraction)))
        decay_start = total_steps - decay_steps
        if step < decay_start:
            return max_lr
        progress = min(1.0, (step - decay_start + 1) / decay_steps)
        return max_lr + (min_lr - max_lr) * progress
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))
