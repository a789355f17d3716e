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
        return with_router_losses(out, out.loss)

    def weight(self, batch) -> float:
        return float((batch["targets"] != IGNORE_INDEX).sum())


def with_router_losses(out, loss: torch.Tensor, metrics: dict | None = None) -> tuple[torch.Tensor, dict]:
    """(loss, metrics) of an objective, plus a mixture-of-experts model's router losses and
    metrics: every objective that trains the experts also trains the router to keep them balanced,
    as pre-training did (fine-tuning on a narrow task otherwise collapses the routing). `loss` in
    the logs stays the objective's own; a dense model's is returned unchanged."""
    metrics = dict(metrics or {})
    if out.aux_loss is None:
        return loss, metrics
    r = out.router
    metrics.update({"moe_aux_loss": r["aux_loss"], "moe_z_loss": r["z_loss"],
                    **{f"expert_util_{e}": f for e, f in enumerate(r["utilisation"])}})
    return loss + out.aux_loss, metrics


def count_targets(targets: torch.Tensor) -> int:
    return int((targets != IGNORE_INDEX).sum())
