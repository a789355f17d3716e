"""Objectives: `objective(model, batch) -> (loss, metrics)`. The training loop is the same for all.

`weight(batch)` tells the loop how much a micro-batch counts when it averages over gradient
accumulation, so a step's loss is the mean over its real units (tokens, pairs), however they fall
into micro-batches.
"""

from __future__ import annotations

import torch

from llmlab.config import IGNORE_INDEX


class NextTokenLoss:
    """Pre-training: cross-entropy of every next token. Batches: input_ids, targets [B, T]."""

    def __call__(self, model, batch):
        out = model(batch["input_ids"], targets=batch["targets"])
        if out.aux_loss is None:
            return out.loss, {}
        # Mixture of experts: the router losses train the router; `loss` stays the cross-entropy.
        r = out.router
        metrics = {"moe_aux_loss": r["aux_loss"], "moe_z_loss": r["z_loss"],
                   **{f"expert_util_{e}": f for e, f in enumerate(r["utilisation"])}}
        return out.loss + out.aux_loss, metrics

    def weight(self, batch) -> float:
        return float((batch["targets"] != IGNORE_INDEX).sum())


def count_targets(targets: torch.Tensor) -> int:
    return int((targets != IGNORE_INDEX).sum())
