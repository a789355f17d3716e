"""`llmlab ppo`: RLHF with PPO (rollouts through the engine, KL penalty, value head, GAE)."""

from __future__ import annotations

from llmlab.cli.training import finetune_command
from llmlab.train.finetune_config import PPOConfig

# Settings PPO derives itself (--policy/--prompts set model/data; the rollout sizes set the steps,
# which --max-steps may cap).
_DERIVED = ("model", "data", "val_data", "val_fraction", "epochs", "batch_size", "max_tokens",
            "skip_long", "eval_batches", "samples", "seq_len", "grad_accum", "eval_every")


command = finetune_command(
    "ppo", PPOConfig, "llmlab.train.ppo:run_ppo",
    """Optimise a policy with PPO against a reward, with a KL penalty to the starting policy.

    \b
    --reward: a reward-model checkpoint (from `llmlab reward`), "sentiment" (VADER compound score
    of the response, TRL's "make GPT-2 write positive reviews" task), or "module:function" for any
    Python callable f(prompts, responses) -> list of floats.
    --prompts: JSONL ("prompt", "messages", "instruction" or "text"), a .txt file (one per line),
    a tinyworld folder (probes/story_prompts.jsonl), or "tinyworld".

    \b
    Example:
      llmlab ppo --policy runs/sft/checkpoint --reward sentiment --prompts tinyworld --out runs/ppo
    Budget: --rollouts, capped by --max-steps (PPO updates) or --minutes: the smaller wins.
    Writes metrics.jsonl (per step), rollouts.jsonl (per rollout: reward, kl, kl_coef, eos_rate),
    reward_vs_kl.png and loss_curve.png (reward and KL per update). KL is per response, in nats,
    by the k3 estimator (never negative; kl_k1 in the logs is the k1 estimate the penalty uses).
    With --json: one JSON object with the first and last reward, KL and the checkpoint.
    """,
    ("reward_first", "reward_last", "kl_last", "kl_max", "kl_coef", "rollouts", "step", "seconds", "plot",
     "checkpoint"),
    exclude=_DERIVED,
)
