"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import torch

from llmlab.config import ModelConfig
from llmlab.model import TransformerLM


def train_small_lm(tokenizer, docs: list[str], *, context: int, seq_len: int, steps: int = 150, lr: float = 3e-3,
                   batch_size: int = 16, seed: int = 0, **model_overrides) -> TransformerLM:
    """A 2-layer model trained for a few seconds on random windows of `docs` (eos-separated), so
    behaviour tests have a model that really learned something. model_overrides: ModelConfig fields."""
    ids: list[int] = []
    for doc in docs:
        ids += tokenizer.encode(doc) + [tokenizer.eos_token_id]
    data = torch.tensor(ids)
    torch.manual_seed(seed)
    settings = dict(vocab_size=tokenizer.vocab_size, context_length=context, n_layer=2, n_head=2, d_model=64)
    model = TransformerLM(ModelConfig(**{**settings, **model_overrides}))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        starts = torch.randint(0, len(data) - seq_len - 1, (batch_size,))
        x = torch.stack([data[i:i + seq_len] for i in starts])
        y = torch.stack([data[i + 1:i + seq_len + 1] for i in starts])
        loss = model(x, targets=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.generation_config = {"eos_token_id": tokenizer.eos_token_id}
    return model
