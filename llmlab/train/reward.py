"""Reward modelling: a language model with a scalar head, trained on preference pairs with the
Bradley-Terry loss, as an objective on the one training loop.

    llmlab reward --model runs/sft/checkpoint --data tinyworld --out runs/rm

    loss = -log sigmoid(r(x, y_chosen) - r(x, y_rejected) - margin)

r reads the hidden state of the last real token (`llmlab.model.heads`), which for a rendered pair is
the end-of-turn token, so the head sees the whole response. Validation reports pairwise accuracy
and the mean margin, overall and per `reason` tag.

A reward checkpoint is an ordinary model checkpoint (the trunk; `llmlab.load` opens it) plus
`reward_head.safetensors` and `reward_head.json` (the template the pairs were rendered with, so
PPO scores responses exactly as the model was trained). `load_reward_model` returns a callable
scorer; `RewardScorer` turns (prompts, responses) into rewards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from llmlab.errors import CheckpointError
from llmlab.model.heads import RewardModel, ScalarHead, hidden_states, pool_last
from llmlab.train.dpo import PreferenceRecipe, pairwise_eval_fn
from llmlab.train.finetune import FinetuneRun, Parts, restore_head, run_finetune, save_head
from llmlab.train.finetune_config import RewardConfig

HEAD_FILE = "reward_head.safetensors"
HEAD_CONFIG = "reward_head.json"


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor,
                       margin: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Per-pair -log sigmoid(r_c - r_r - margin)."""
    return -F.logsigmoid(r_chosen - r_rejected - margin)


class RewardLoss:
    """objective(lm, batch) with the head held here (the loop trains it as extra parameters).
    Batches: `collate_pairs` output, chosen rows then rejected rows."""

    def __init__(self, head: ScalarHead, margin: float = 0.0):
        self.head, self.margin = head, margin

    def rewards(self, model, batch) -> torch.Tensor:
        hidden = hidden_states(model, batch["input_ids"], batch["attention_mask"])
        return pool_last(self.head(hidden), batch["attention_mask"]).float()

    def __call__(self, model, batch):
        r = self.rewards(model, batch)
        B = r.shape[0] // 2
        diff = r[:B] - r[B:]
        loss = bradley_terry_loss(r[:B], r[B:], self.margin).mean()
        diff = diff.detach()
        return loss, {"accuracy": (diff > 0).float().mean(), "margin": diff.mean()}  # read by the loop once per log

    def weight(self, batch) -> float:
        return batch["input_ids"].shape[0] / 2


def make_eval_fn(val_pairs: Sequence, objective: RewardLoss, pad_id: int, device, batch_size: int,
                 max_batches: int = 0) -> Callable[[torch.nn.Module], dict[str, float]]:
    """Pairwise accuracy and mean margin on validation, overall and per reason tag."""
    from llmlab.data.sft import collate_pairs, evaluated_units, fixed_batches

    pairs = evaluated_units(val_pairs, batch_size, max_batches)
    batches = fixed_batches(pairs, batch_size, lambda u: collate_pairs(u, pad_id))

    def score(model, batch):
        r = objective.rewards(model, batch)
        B = r.shape[0] // 2
        return bradley_terry_loss(r[:B], r[B:], objective.margin), r[:B] - r[B:]

    return pairwise_eval_fn(pairs, batches, device, score, "val_accuracy")


# ---------------------------------------------------------------------------- saving and loading
def head_writer(head: ScalarHead, template: str, extra: dict[str, Any] | None = None) -> Callable[[Path], None]:
    """A `write_extra` for save_checkpoint: the head's weights and what scoring needs to know."""
    write_config = head_config_writer(template, extra)

    def write(directory: Path) -> None:
        save_head(head, Path(directory) / HEAD_FILE)
        write_config(directory)

    return write


def head_config_writer(template: str, extra: dict[str, Any] | None = None) -> Callable[[Path], None]:
    def write(directory: Path) -> None:
        meta = {"kind": "reward", "pooling": "last_token", "template": template, **(extra or {})}
        (Path(directory) / HEAD_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")

    return write


def load_head(directory: str | Path, d_model: int, device="cpu") -> tuple[ScalarHead, dict[str, Any]]:
    directory = Path(directory)
    if not (directory / HEAD_CONFIG).is_file():
        raise CheckpointError(f"{directory} is not a reward model (no {HEAD_CONFIG}); train one with `llmlab reward`")
    meta = json.loads((directory / HEAD_CONFIG).read_text())
    head = ScalarHead(d_model)
    restore_head(head, directory / HEAD_FILE)
    return head.to(device), meta


class RewardScorer:
    """Score (prompt, response) texts with a reward model: `scorer(prompts, responses) -> [B] floats`.

    Each pair is rendered with the template the reward model was trained with (ChatML: the prompt
    as the user turn, the response as the assistant turn, closed by <|im_end|>)."""

    def __init__(self, reward_model: RewardModel, tokenizer, template: str = "chatml", batch_size: int = 16):
        self.model, self.tokenizer = reward_model.eval(), tokenizer
        self.template, self.batch_size = template, batch_size

    def encode(self, prompt, response: str) -> list[int]:
        from llmlab.data.formats import SFTExample
        from llmlab.data.sft import render_sft

        messages = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        ex = SFTExample("scored response", messages=messages + [{"role": "assistant", "content": response}],
                        train_from=len(messages), prompt=prompt if isinstance(prompt, str) else None,
                        completion=response)
        text, _ = render_sft(ex, self.template, self.tokenizer)
        return self.tokenizer.encode(text)

    @torch.no_grad()
    def __call__(self, prompts: Sequence, responses: Sequence[str]) -> list[float]:
        from llmlab.data.sft import pad_id_for

        C = self.model.config.context_length
        device = next(self.model.parameters()).device
        pad = pad_id_for(self.tokenizer)
        # Too long: drop from the left, keeping the response's end, which is what the head reads.
        seqs = [self.encode(p, r)[-C:] for p, r in zip(prompts, responses)]
        scores: list[float] = []
        for i in range(0, len(seqs), self.batch_size):
            chunk = seqs[i:i + self.batch_size]
            T = max(len(x) for x in chunk)
            ids = torch.full((len(chunk), T), pad, dtype=torch.long)
            mask = torch.zeros(len(chunk), T, dtype=torch.long)
            for j, x in enumerate(chunk):
                ids[j, :len(x)], mask[j, :len(x)] = torch.tensor(x), 1
            scores += self.model(ids.to(device), mask.to(device)).float().tolist()
        return scores


def load_reward_model(directory: str | Path, device="cpu") -> RewardScorer:
    """The reward model of a `llmlab reward` checkpoint as a (prompts, responses) -> rewards scorer."""
    import llmlab

    lm, tokenizer = llmlab.load(directory, device=device)
    if tokenizer is None:
        raise CheckpointError(f"{directory} has no tokenizer.json")
    head, meta = load_head(directory, lm.config.d_model, device)
    return RewardScorer(RewardModel(lm, head), tokenizer, meta.get("template", "chatml"))


# ---------------------------------------------------------------------------- the run
class RewardRecipe(PreferenceRecipe):
    needs = (HEAD_FILE, HEAD_CONFIG)
    one_process = "reward modelling runs in one process (the head is not synchronised under DDP yet)"

    def build(self, run: FinetuneRun) -> Parts:
        from llmlab.data.sft import ShuffledBatches, collate_pairs

        cfg, pad = run.cfg, self.pad
        head = ScalarHead(run.model.config.d_model).to(run.device)
        objective = RewardLoss(head, cfg.margin)
        batches = ShuffledBatches(self.train, cfg.batch_size, lambda u: collate_pairs(u, pad), seed=cfg.seed)
        return Parts(objective, batches, len(self.train), self.tokens_per_pair,
                     eval_fn=make_eval_fn(self.val, objective, pad, run.device, cfg.batch_size, cfg.eval_batches),
                     heads={HEAD_FILE: head},
                     checkpoint_extra=head_config_writer(self.template, {"base_model": cfg.model}))

    def describe(self, run: FinetuneRun, trainer) -> str:
        return (f"reward model: {trainer.state.total_steps} steps of {run.units_per_step} pairs; "
                f"template {self.template}; device {run.device}")

    def results(self, run: FinetuneRun, trainer) -> dict[str, Any]:
        return {**super().results(run, trainer), "template": self.template}


def run_reward(cfg: RewardConfig, resume: bool | str = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    return run_finetune(cfg, resume, log, RewardRecipe())
