"""`llmlab reward`: train a reward model (scalar head, Bradley-Terry loss) on preference pairs."""

from __future__ import annotations

from llmlab.cli.training import finetune_command
from llmlab.train.finetune_config import RewardConfig

command = finetune_command(
    "reward", RewardConfig, "llmlab.train.reward:run_reward",
    """Train a reward model: the language model plus a scalar head on the last real token,
    trained so that r(chosen) > r(rejected) (Bradley-Terry loss, optional margin).

    \b
    Data (--data): JSONL preference records with "prompt", "chosen", "rejected" (strings or
    chat messages; an optional "reason" tag gives per-tag accuracy); a tinyworld folder (its
    preferences/ split); or "tinyworld".

    \b
    Example:
      llmlab reward --model runs/sft/checkpoint --data runs/quickstart/tinyworld --out runs/rm
    The checkpoint (OUT/checkpoint) holds the trunk plus reward_head.safetensors; pass it to
    `llmlab ppo --reward OUT/checkpoint`. With --json: one JSON object with val_accuracy,
    val_margin, per-tag accuracies (val_acc/<reason>) and the checkpoint.
    """,
    ("val_accuracy", "val_margin", "val_loss", "pairs", "step", "seconds", "template", "checkpoint"),
    extra_keys_prefix=("val_acc/",),
)
