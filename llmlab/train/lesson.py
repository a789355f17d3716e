"""The lesson's `LLMTrainer`, kept as a familiar API over llmlab's one training loop.

    trainer = LLMTrainer(model, tokenizer, config)   # config: learning_rate, weight_decay, max_length
    loss = trainer.train_step(["some text", "more text"])

Differences from the lesson's sketch, each a known pitfall:
- padding is excluded from the loss through the attention mask (label IGNORE_INDEX), not through
  `ignore_index=pad_token_id`, which would also ignore every real end-of-text token whenever pad
  and eos are the same token (as with GPT-2);
- the step goes through `Trainer.train_step`, so clipping, skipping non-finite updates and mixed
  precision behave exactly as in `llmlab pretrain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Sequence

import torch

from llmlab.config import IGNORE_INDEX
from llmlab.train.config import TrainConfig
from llmlab.train.trainer import Trainer


@dataclass
class LessonConfig:
    learning_rate: float = 3e-4
    weight_decay: float = 0.01
    max_length: int = 128
    grad_clip: float = 1.0


class _Queue:
    """Feeds the batch given to train_step to the loop's next()."""

    def __init__(self):
        self.batch = None
        self.steps = 0

    def __next__(self):
        batch, self.batch = self.batch, None
        self.steps += 1
        return batch

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


class _LabelledLoss:
    def __call__(self, model, batch):
        out = model(batch["input_ids"], attention_mask=batch["attention_mask"], targets=batch["targets"])
        return out.loss, {}

    def weight(self, batch) -> float:
        return float((batch["targets"] != IGNORE_INDEX).sum())


class LLMTrainer:
    def __init__(self, model, tokenizer, config: Any = None, out_dir: str = ".llmlab-lesson-trainer"):
        config = config or LessonConfig()
        get = lambda name, default: getattr(config, name, default)  # noqa: E731 (any object with these fields)
        self.model, self.tokenizer = model, tokenizer
        self.config = SimpleNamespace(
            learning_rate=get("learning_rate", 3e-4), weight_decay=get("weight_decay", 0.01),
            max_length=get("max_length", 128), grad_clip=get("grad_clip", 1.0),
        )
        train_cfg = TrainConfig(
            data="-", out=out_dir, max_steps=10**9, lr=self.config.learning_rate, weight_decay=self.config.weight_decay,
            warmup_steps=0, schedule="constant", grad_clip=self.config.grad_clip, progress=False, precision="fp32",
        )
        self._queue = _Queue()
        device = next(model.parameters()).device
        self.loop = Trainer(model, _LabelledLoss(), self._queue, train_cfg, device=device, log=lambda *_: None)
        self.loop.metrics.enabled = False
        self.optimizer = self.loop.optimizer

    def preprocess_batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tokenise, pad and truncate; return (input_ids, target_ids, attention_mask) shifted by one."""
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.config.max_length,
                             return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, IGNORE_INDEX)
        return ids[:, :-1], targets, mask[:, :-1]

    def compute_loss(self, input_ids, target_ids, attention_mask=None) -> torch.Tensor:
        """Next-token cross-entropy, ignoring padded targets."""
        return self.model(input_ids, attention_mask=attention_mask, targets=target_ids).loss

    def train_step(self, batch: Sequence[str]) -> float:
        """One optimizer step on a list of texts; returns the loss."""
        input_ids, target_ids, mask = self.preprocess_batch(batch)
        self._queue.batch = {"input_ids": input_ids, "targets": target_ids, "attention_mask": mask}
        record = self.loop.train_step()
        return float(record["loss"])
