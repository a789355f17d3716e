"""`llmlab pretrain`: train a language model from scratch on prepared shards."""

from __future__ import annotations

from llmlab.cli.training import training_command
from llmlab.train.config import TrainConfig

command = training_command(
    "pretrain", TrainConfig, "llmlab.train.pretrain:run_pretraining",
    """Pre-train a language model with next-token prediction.

    \b
    Example:
      llmlab data tinyworld --out data/tw --tokens 5M
      llmlab data prepare --input data/tw --train-tokenizer --vocab-size 2048 --out data/tw-shards
      llmlab pretrain --data data/tw-shards --preset tiny --max-steps 500 --out runs/tiny

    With --json the command ends by printing one JSON object with val_loss, val_bpb, tokens,
    seconds and checkpoint.
    """,
    ("val_loss", "val_bpb", "val_ppl", "tokens", "seconds", "step", "checkpoint"),
    title="pre-training done",
)
