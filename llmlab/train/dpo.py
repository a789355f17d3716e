"""Direct preference optimisation (DPO, Rafailov et al. 2023), and IPO, as objectives on the one loop.

    llmlab dpo --model runs/sft/checkpoint --data tinyworld --out runs/dpo --beta 0.1

With h = [log pi(y_c|x) - log ref(y_c|x)] - [log pi(y_r|x) - log ref(y_r|x)] (sums over the
response tokens, end-of-turn token included):

    sigmoid (DPO):  loss = -log sigmoid(beta * h)     (conservative DPO with label_smoothing e:
                    -(1 - e) log sigmoid(beta h) - e log sigmoid(-beta h))
    ipo:            loss = (h_avg - 1 / (2 beta))^2   with per-token *average* log-probs, as in TRL
    + rpo_alpha * NLL(y_c), the per-token mean negative log-likelihood of the chosen response (RPO,
                    Pang et al. 2024): the DPO term only widens the gap, and can do so by lowering
                    both likelihoods until the chosen answers are garbled too.

The reference is the starting model. Its log-probabilities are computed once, before training,
for every pair (train and validation) and stored with the data, so no second model stays in memory.
Logged per step: reward accuracy (share of pairs with beta*h > 0), margin (mean beta*h) and the
implicit rewards beta * (log pi - log ref) of chosen and rejected responses.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from llmlab.config import IGNORE_INDEX
from llmlab.train.finetune import FinetuneRecipe, FinetuneRun, Parts, load_tokenized, run_finetune
from llmlab.train.finetune_config import DPOConfig, FinetuneConfig
from llmlab.train.trainer import move_batch


# ---------------------------------------------------------------------------- the loss
def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1, loss_type: str = "sigmoid",
             label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair losses [B] and the implicit rewards of chosen and rejected responses [B] each.

    Inputs are sequence log-probabilities [B] (sums, or per-token means for IPO)."""
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    h = chosen_ratio - rejected_ratio
    if loss_type == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"unknown DPO loss {loss_type!r}")
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def target_counts(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Number of target tokens per row: [rows]."""
    return (batch["targets"] != IGNORE_INDEX).sum(-1).clamp(min=1)


def response_logps(model, batch: dict[str, torch.Tensor], average: bool = False) -> torch.Tensor:
    """Sum (or mean) of log p(target) over each row's target tokens: [rows]. Batches come from
    `collate_pairs` (chosen rows, then rejected rows)."""
    from llmlab.infer.scoring import token_logprobs

    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    lp = token_logprobs(logits, batch["targets"])  # 0 where the target is ignored
    total = lp.sum(-1)
    return total / target_counts(batch) if average else total


class DPOLoss:
    """objective(model, batch): batches hold 2B rows (chosen then rejected) and `ref_logps` [2B]."""

    def __init__(self, beta: float = 0.1, loss_type: str = "sigmoid", label_smoothing: float = 0.0,
                 rpo_alpha: float = 0.0):
        self.beta, self.loss_type, self.label_smoothing = beta, loss_type, label_smoothing
        self.rpo_alpha = rpo_alpha

    @property
    def average(self) -> bool:
        return self.loss_type == "ipo"

    def __call__(self, model, batch):
        logps = response_logps(model, batch, self.average)
        ref = batch["ref_avg_logps" if self.average else "ref_logps"]
        B = logps.shape[0] // 2
        losses, rc, rr = dpo_loss(logps[:B], logps[B:], ref[:B], ref[B:], self.beta, self.loss_type,
                                  self.label_smoothing)
        margin = rc - rr
        # Tensors, not floats: the loop reads metrics once per log interval (no per-step host sync).
        metrics = {"reward_acc": (margin > 0).float().mean(), "margin": margin.mean(),
                   "chosen_reward": rc.mean(), "rejected_reward": rr.mean()}
        loss = losses.mean()
        if self.rpo_alpha:
            chosen_avg = logps[:B] if self.average else logps[:B] / target_counts(batch)[:B]
            nll = -chosen_avg.mean()
            loss = loss + self.rpo_alpha * nll
            metrics["nll_chosen"] = nll.detach()
        return loss, metrics

    def weight(self, batch) -> float:
        return batch["input_ids"].shape[0] / 2  # pairs


# ---------------------------------------------------------------------------- reference log-probs
@torch.no_grad()
def attach_reference_logps(model, pairs: Sequence, pad_id: int, device, batch_size: int = 16,
                           progress: bool = False) -> None:
    """Compute the reference model's sequence log-probabilities of every pair once and store
    them on the pairs (`ref_logps`: (chosen, rejected) sums; `ref_avg_logps`: per-token means)."""
    from llmlab.data.sft import collate_pairs

    was_training = model.training
    model.eval()
    chunks = range(0, len(pairs), batch_size)
    if progress:
        from llmlab.progress import progress_bar

        chunks = progress_bar(chunks, desc="reference log-probs", unit="batch")
    for start in chunks:
        part = pairs[start:start + batch_size]
        batch = move_batch(collate_pairs(part, pad_id), device)
        total = response_logps(model, batch).float().cpu()
        counts = target_counts(batch).cpu()
        B = len(part)
        for i, p in enumerate(part):
            p.ref_logps = (float(total[i]), float(total[B + i]))
            p.ref_avg_logps = (float(total[i] / counts[i]), float(total[B + i] / counts[B + i]))
    model.train(was_training)


def collate_with_reference(pairs: Sequence, pad_id: int) -> dict[str, torch.Tensor]:
    from llmlab.data.sft import collate_pairs

    batch = collate_pairs(pairs, pad_id)
    batch["ref_logps"] = torch.tensor([p.ref_logps[0] for p in pairs] + [p.ref_logps[1] for p in pairs])
    batch["ref_avg_logps"] = torch.tensor([p.ref_avg_logps[0] for p in pairs] + [p.ref_avg_logps[1] for p in pairs])
    return batch


def make_eval_fn(val_pairs: Sequence, objective: DPOLoss, pad_id: int, device, batch_size: int,
                 max_batches: int = 0) -> Callable[[torch.nn.Module], dict[str, float]]:
    """Validation loss, reward accuracy and margin, overall and by reason tag."""
    from llmlab.data.sft import evaluated_units, fixed_batches

    pairs = evaluated_units(val_pairs, batch_size, max_batches)
    batches = fixed_batches(pairs, batch_size, lambda u: collate_with_reference(u, pad_id))

    def score(model, batch):
        logps = response_logps(model, batch, objective.average)
        ref = batch["ref_avg_logps" if objective.average else "ref_logps"]
        B = logps.shape[0] // 2
        loss, rc, rr = dpo_loss(logps[:B], logps[B:], ref[:B], ref[B:], objective.beta, objective.loss_type,
                                objective.label_smoothing)
        return loss, rc - rr

    return pairwise_eval_fn(pairs, batches, device, score, "val_reward_acc")


def pairwise_eval_fn(pairs: Sequence, batches: list, device, score,
                     accuracy_key: str) -> Callable[[torch.nn.Module], dict[str, float]]:
    """Validation of an objective on preference pairs: score(model, batch) -> (per-pair losses,
    margins); reports the mean loss and margin and the share of positive margins (`accuracy_key`),
    overall and per reason tag (val_acc/<reason>)."""

    def evaluate(model) -> dict[str, float]:
        losses, margins = [], []
        for batch in batches:
            loss, margin = score(model, move_batch(batch, device))
            losses += loss.tolist()
            margins += margin.tolist()
        out = {"val_loss": sum(losses) / len(losses), accuracy_key: sum(m > 0 for m in margins) / len(margins),
               "val_margin": sum(margins) / len(margins)}
        out.update(accuracy_by_reason([p.reason for p in pairs], margins, prefix="val_acc/"))
        return out

    return evaluate


def accuracy_by_reason(reasons: Sequence[str | None], margins: Sequence[float], prefix: str = "") -> dict[str, float]:
    """Share of pairs with a positive margin, per reason tag (pairs without a tag are skipped)."""
    groups: dict[str, list[float]] = {}
    for r, m in zip(reasons, margins):
        if r is not None:
            groups.setdefault(str(r), []).append(m)
    return {f"{prefix}{r}": sum(m > 0 for m in ms) / len(ms) for r, ms in sorted(groups.items())}


# ---------------------------------------------------------------------------- the run
def load_preference_pairs(cfg: FinetuneConfig, tokenizer, max_len: int, template: str, log) -> tuple[list, list]:
    """Tokenised (train, validation) preference pairs for --data/--val-data."""
    from llmlab.data.formats import load_preferences
    from llmlab.data.sft import tokenize_preferences

    def tokenize(records, skip_long):
        return tokenize_preferences(records, template, tokenizer, max_len, skip_long)

    train, val, _ = load_tokenized(cfg, "preferences", load_preferences, tokenize, "pairs", max_len, log)
    return train, val


class PreferenceRecipe(FinetuneRecipe):
    """Setup shared by the objectives on preference pairs (DPO here, reward modelling)."""

    def setup(self, run: FinetuneRun) -> None:
        from llmlab.data.sft import check_template, pad_id_for

        self.template = check_template(run.cfg.template, run.tokenizer)
        self.train, self.val = load_preference_pairs(run.cfg, run.tokenizer, run.max_len(), self.template, run.log)
        self.pad = pad_id_for(run.tokenizer)
        self.tokens_per_pair = sum(len(p.chosen) + len(p.rejected) for p in self.train) / len(self.train)

    def results(self, run: FinetuneRun, trainer) -> dict[str, Any]:
        return {**trainer.state.last_eval, "pairs": len(self.train)}


class DPORecipe(PreferenceRecipe):
    def setup(self, run: FinetuneRun) -> None:
        super().setup(run)
        # The reference is the model as loaded: score everything with it now, then it is no longer needed.
        attach_reference_logps(run.model, self.train + self.val, self.pad, run.device, run.cfg.batch_size,
                               progress=run.cfg.progress)

    def build(self, run: FinetuneRun) -> Parts:
        from llmlab.data.sft import ShuffledBatches

        cfg, pad = run.cfg, self.pad
        objective = DPOLoss(cfg.beta, cfg.loss_type, cfg.label_smoothing, cfg.rpo_alpha)
        batches = ShuffledBatches(self.train, cfg.batch_size, lambda u: collate_with_reference(u, pad), seed=cfg.seed,
                                  rank=run.dist.rank, world_size=run.dist.world_size)
        return Parts(objective, batches, len(self.train), self.tokens_per_pair,
                     eval_fn=make_eval_fn(self.val, objective, pad, run.device, cfg.batch_size, cfg.eval_batches))

    def describe(self, run: FinetuneRun, trainer) -> str:
        return (f"DPO ({run.cfg.loss_type}, beta {run.cfg.beta}): {trainer.state.total_steps} steps of "
                f"{run.units_per_step} pairs; device {run.device}")

    def results(self, run: FinetuneRun, trainer) -> dict[str, Any]:
        return {**super().results(run, trainer), "beta": run.cfg.beta, "loss_type": run.cfg.loss_type}


def run_dpo(cfg: DPOConfig, resume: bool | str = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    return run_finetune(cfg, resume, log, DPORecipe())
