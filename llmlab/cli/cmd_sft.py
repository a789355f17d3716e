"""`llmlab sft`: supervised fine-tuning (full or LoRA) on instruction / chat records."""

from __future__ import annotations

from llmlab.cli.training import finetune_command
from llmlab.train.finetune_config import SFTConfig

command = finetune_command(
    "sft", SFTConfig, "llmlab.train.sft:run_sft",
    """Supervised fine-tuning: teach a pre-trained model to follow instructions.

    \b
    Data (--data): JSONL records with "messages", "prompt"/"completion" or alpaca
    "instruction"/"input"/"output"; a tinyworld folder (its sft/ split); or "tinyworld".
    The loss covers only the assistant/completion tokens and the token that ends the turn.

    \b
    Examples:
      llmlab sft --model runs/quickstart/run/checkpoint --data runs/quickstart/tinyworld --out runs/sft
      llmlab sft --model M --data my.jsonl --out runs/sft-lora --lora-rank 8 --epochs 3
    With --lora-rank the adapters are merged into a plain checkpoint at the end (OUT/checkpoint).
    With --json the command prints one JSON object (val_loss, checkpoint, steps, seconds, ...).
    """,
    ("val_loss", "val_ppl", "examples", "skipped_long", "step", "tokens", "seconds", "template", "packing",
     "lora_rank", "checkpoint"),
)
