"""`llmlab dpo`: direct preference optimisation against a frozen reference, or IPO, KTO, ORPO, SimPO (--loss)."""

from __future__ import annotations

from llmlab.cli.training import finetune_command
from llmlab.train.finetune_config import DPOConfig

command = finetune_command(
    "dpo", DPOConfig, "llmlab.train.dpo:run_dpo",
    """Align a model to preference pairs with DPO (sigmoid loss, beta), or --loss ipo, kto, orpo or simpo.

    The reference is the starting model; its log-probabilities are computed once before training,
    so no second model is kept in memory (orpo and simpo need no reference and skip that pass).

    \b
    Data (--data): JSONL preference records with "prompt", "chosen", "rejected" (strings or chat
    messages); a tinyworld folder (its preferences/ split); or "tinyworld". --loss kto also takes
    unpaired records {"prompt", "completion", "label": true|false}, and splits each pair into a
    desirable (chosen) and an undesirable (rejected) example.

    \b
    Example:
      llmlab dpo --model runs/sft/checkpoint --data runs/quickstart/tinyworld --out runs/dpo --beta 0.1
    With --json: one JSON object with val_reward_acc, val_margin, per-tag accuracies and the checkpoint.
    """,
    ("val_reward_acc", "val_margin", "val_loss", "pairs", "examples", "beta", "loss_type", "step", "seconds",
     "checkpoint"),
    extra_keys_prefix=("val_acc/",),
)
