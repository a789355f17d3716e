"""Scalar heads on a language model's final hidden states: the reward model's score and PPO's
value estimate. Pure nn; saving and loading live in `llmlab.train.reward`.

A reward model reads the hidden state of the *last real token* of each sequence. Which index that
is depends on the padding side, a classic bug: with right padding it is length - 1, with left
padding it is T - 1, and "the last position" is padding for right-padded rows. `last_token_index`
finds it from the attention mask, so either side gives the same score (tested).
"""

from __future__ import annotations

import torch
import torch.nn as nn


class ScalarHead(nn.Module):
    """d_model -> one number per position."""

    def __init__(self, d_model: int, init_std: float | None = None):
        super().__init__()
        self.proj = nn.Linear(d_model, 1)
        # A small init keeps early rewards/values near zero, so the first losses are near log 2 / 0.
        nn.init.normal_(self.proj.weight, std=init_std if init_std is not None else 1.0 / (d_model + 1) ** 0.5)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [B, T, d] -> scores [B, T] (in the head's dtype, fp32 under autocast-free use)."""
        return self.proj(hidden.to(self.proj.weight.dtype)).squeeze(-1)


def last_token_index(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """Index of each row's last real token (mask 1), whatever the padding side; None without a mask."""
    if attention_mask is None:
        return None
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (positions * attention_mask.to(torch.long)).max(dim=-1).values


def pool_last(scores: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """scores [B, T] -> [B]: each row's score at its last real token."""
    idx = last_token_index(attention_mask)
    if idx is None:
        return scores[:, -1]
    return scores.gather(1, idx[:, None]).squeeze(1)


def hidden_states(lm: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                  position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Final-norm hidden states [B, T, d] through the model's forward (so a DDP wrapper sees the
    call); logits are computed for one position only, which costs next to nothing."""
    out = lm(input_ids, attention_mask=attention_mask, position_ids=position_ids, output_hidden_states=True,
             num_logits_to_keep=1)
    return out.hidden_states


class RewardModel(nn.Module):
    """A language model trunk and a scalar head on the last real token: r(x) for a whole text."""

    def __init__(self, lm: nn.Module, head: ScalarHead | None = None):
        super().__init__()
        self.lm = lm
        self.head = head if head is not None else ScalarHead(lm.config.d_model).to(next(lm.parameters()).device)

    @property
    def config(self):
        return self.lm.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Rewards [B] for the (padded, either side) sequences in input_ids [B, T]."""
        return pool_last(self.head(hidden_states(self.lm, input_ids, attention_mask)), attention_mask)
