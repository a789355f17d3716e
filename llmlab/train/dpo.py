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

`--loss` picks the loss; three more need no pairs or no reference (a_c, a_r: per-token average
log-probs of chosen and rejected under the policy):

    simpo (Meng et al. 2024):  -log sigmoid(beta (a_c - a_r) - gamma)           no reference
    orpo (Hong et al. 2024):   -a_c + lambda * -log sigmoid(lo(a_c) - lo(a_r)),  no reference
                               lo(a) = a - log(1 - exp(a)), the log odds of the average token
    kto (Ethayarajh et al. 2024), on unpaired completions y with r = log pi(y|x) - log ref(y|x):
                               desirable:   lambda_D (1 - sigmoid(beta (r - z0)))
                               undesirable: lambda_U (1 - sigmoid(beta (z0 - r)))
                               z0 = max(0, mean r over the batch), detached: the simple estimate of
                               KL(pi||ref), not TRL's mismatched-pair one (which needs a third forward).
                               Preference pairs become a desirable and an undesirable example each.

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
from llmlab.train.finetune_config import REFERENCE_FREE_LOSSES, DPOConfig, FinetuneConfig
from llmlab.train.objectives import with_router_losses
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


def simpo_loss(policy_chosen_avg: torch.Tensor, policy_rejected_avg: torch.Tensor, beta: float = 2.0,
               gamma: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SimPO per-pair losses [B] and rewards beta * avg log p of chosen and rejected [B] each."""
    rc, rr = beta * policy_chosen_avg, beta * policy_rejected_avg
    return -F.logsigmoid(rc - rr - gamma), rc.detach(), rr.detach()


def log_odds(avg_logp: torch.Tensor) -> torch.Tensor:
    """log(p / (1 - p)) for p = exp(avg_logp); log(-expm1(a)) stays accurate as p -> 0, and the
    clamp keeps a response the model is certain of (avg log p rounds to 0 in fp32) finite, not inf."""
    a = avg_logp.clamp(max=-1e-6)
    return a - torch.log(-torch.expm1(a))


def orpo_loss(policy_chosen_avg: torch.Tensor, policy_rejected_avg: torch.Tensor,
              lam: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ORPO per-pair losses [B] (chosen NLL + lam * odds-ratio loss) and rewards lam * avg log p
    of chosen and rejected (TRL's)."""
    ratio = -F.logsigmoid(log_odds(policy_chosen_avg) - log_odds(policy_rejected_avg))
    return -policy_chosen_avg + lam * ratio, lam * policy_chosen_avg.detach(), lam * policy_rejected_avg.detach()


def kto_loss(policy: torch.Tensor, ref: torch.Tensor, desirable: torch.Tensor, beta: float = 0.1,
             desirable_weight: float = 1.0,
             undesirable_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """KTO per-example losses [N], implicit rewards beta * r [N] and z0 (a scalar).

    policy, ref: sequence log-probs [N]; desirable: bool [N]."""
    r = policy - ref
    z0 = r.detach().mean().clamp(min=0)  # a baseline, not something to optimise
    losses = torch.where(desirable, desirable_weight * (1 - torch.sigmoid(beta * (r - z0))),
                         undesirable_weight * (1 - torch.sigmoid(beta * (z0 - r))))
    return losses, beta * r.detach(), z0


def target_counts(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Number of target tokens per row: [rows]."""
    return (batch["targets"] != IGNORE_INDEX).sum(-1).clamp(min=1)


def response_logps(model, batch: dict[str, torch.Tensor], average: bool = False) -> torch.Tensor:
    """Sum (or mean) of log p(target) over each row's target tokens: [rows]. Batches come from
    `collate_pairs` (chosen rows, then rejected rows)."""
    return forward_response_logps(model, batch, average)[0]


def forward_response_logps(model, batch: dict[str, torch.Tensor], average: bool = False):
    """(response_logps, the model's output): objectives also need the output's router losses."""
    from llmlab.infer.scoring import token_logprobs

    out = model(batch["input_ids"], attention_mask=batch["attention_mask"])
    lp = token_logprobs(out.logits, batch["targets"])  # 0 where the target is ignored
    total = lp.sum(-1)
    return (total / target_counts(batch) if average else total), out


class DPOLoss:
    """objective(model, batch) for the pairwise losses (sigmoid, ipo, simpo, orpo): batches hold 2B
    rows (chosen then rejected) and, for the losses with a reference, `ref_logps` [2B]."""

    def __init__(self, beta: float = 0.1, loss_type: str = "sigmoid", label_smoothing: float = 0.0,
                 rpo_alpha: float = 0.0, simpo_gamma: float = 0.5, orpo_lambda: float = 0.1):
        self.beta, self.loss_type, self.label_smoothing = beta, loss_type, label_smoothing
        self.rpo_alpha, self.simpo_gamma, self.orpo_lambda = rpo_alpha, simpo_gamma, orpo_lambda

    @property
    def average(self) -> bool:
        return self.loss_type in ("ipo", "simpo", "orpo")

    def pair_losses(self, logps: torch.Tensor, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-pair losses and chosen/rejected rewards from the policy's log-probs [2B]."""
        B = logps.shape[0] // 2
        if self.loss_type == "simpo":
            return simpo_loss(logps[:B], logps[B:], self.beta, self.simpo_gamma)
        if self.loss_type == "orpo":
            return orpo_loss(logps[:B], logps[B:], self.orpo_lambda)
        ref = batch["ref_avg_logps" if self.average else "ref_logps"]
        return dpo_loss(logps[:B], logps[B:], ref[:B], ref[B:], self.beta, self.loss_type, self.label_smoothing)

    def scores(self, logps: torch.Tensor, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pair losses and margins (what validation reports)."""
        losses, rc, rr = self.pair_losses(logps, batch)
        return losses, rc - rr

    def __call__(self, model, batch):
        logps, out = forward_response_logps(model, batch, self.average)
        B = logps.shape[0] // 2
        losses, rc, rr = self.pair_losses(logps, batch)
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
        return with_router_losses(out, loss, metrics)

    def weight(self, batch) -> float:
        return batch["input_ids"].shape[0] / 2  # pairs


class KTOLoss:
    """objective(model, batch) for KTO: batches hold N unpaired completions, `desirable` [N] and
    `ref_logps` [N]."""

    average = False

    def __init__(self, beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0):
        self.beta, self.desirable_weight, self.undesirable_weight = beta, desirable_weight, undesirable_weight

    def scores(self, logps: torch.Tensor, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example losses [N] and signed margins [N]: beta (r - z0), negated for undesirable ones,
        so positive when the example sits on its label's side of the reference point z0."""
        losses, rewards, z0 = kto_loss(logps, batch["ref_logps"], batch["desirable"], self.beta,
                                       self.desirable_weight, self.undesirable_weight)
        return losses, self.signed(rewards, z0, batch["desirable"])

    def signed(self, rewards: torch.Tensor, z0: torch.Tensor, desirable: torch.Tensor) -> torch.Tensor:
        above = rewards - self.beta * z0
        return torch.where(desirable, above, -above)

    def __call__(self, model, batch):
        logps, out = forward_response_logps(model, batch)
        losses, rewards, z0 = kto_loss(logps, batch["ref_logps"], batch["desirable"], self.beta,
                                       self.desirable_weight, self.undesirable_weight)
        d = batch["desirable"].float()
        # Mean rewards of each kind (0 when a batch has none of a kind).
        rc = (rewards * d).sum() / d.sum().clamp(min=1)
        rr = (rewards * (1 - d)).sum() / (1 - d).sum().clamp(min=1)
        signed = self.signed(rewards, z0, batch["desirable"])
        metrics = {"reward_acc": (signed > 0).float().mean(), "margin": rc - rr, "chosen_reward": rc,
                   "rejected_reward": rr, "kl": z0}
        return with_router_losses(out, losses.mean(), metrics)

    def weight(self, batch) -> float:
        return batch["input_ids"].shape[0]  # examples


# ---------------------------------------------------------------------------- reference log-probs
@torch.no_grad()
def reference_logps(model, examples: Sequence, pad_id: int, device, batch_size: int = 16,
                    progress: bool = False) -> tuple[list[float], list[int]]:
    """The model's sequence log-probabilities of TokenizedExamples (sums) and their target counts."""
    from llmlab.data.sft import collate_padded

    was_training = model.training
    model.eval()
    chunks = range(0, len(examples), batch_size)
    if progress:
        from llmlab.progress import progress_bar

        chunks = progress_bar(chunks, desc="reference log-probs", unit="batch")
    totals, counts = [], []
    for start in chunks:
        batch = move_batch(collate_padded(examples[start:start + batch_size], pad_id), device)
        totals += response_logps(model, batch).float().cpu().tolist()
        counts += target_counts(batch).cpu().tolist()
    model.train(was_training)
    return totals, counts


def attach_reference_logps(model, pairs: Sequence, pad_id: int, device, batch_size: int = 16,
                           progress: bool = False) -> None:
    """Compute the reference model's sequence log-probabilities of every pair once and store
    them on the pairs (`ref_logps`: (chosen, rejected) sums; `ref_avg_logps`: per-token means)."""
    # Both sides of a pair in one chunk, as collate_pairs batches them (same padding, same numbers).
    examples = [ex for p in pairs for ex in (p.chosen, p.rejected)]
    totals, counts = reference_logps(model, examples, pad_id, device, 2 * batch_size, progress)
    for i, p in enumerate(pairs):
        c, r = 2 * i, 2 * i + 1
        p.ref_logps = (totals[c], totals[r])
        p.ref_avg_logps = (totals[c] / counts[c], totals[r] / counts[r])


def collate_with_reference(pairs: Sequence, pad_id: int) -> dict[str, torch.Tensor]:
    """collate_pairs plus the pairs' reference log-probs, when they have them (not for orpo/simpo)."""
    from llmlab.data.sft import collate_pairs

    batch = collate_pairs(pairs, pad_id)
    if pairs[0].ref_logps is not None:
        batch["ref_logps"] = torch.tensor([p.ref_logps[0] for p in pairs] + [p.ref_logps[1] for p in pairs])
        batch["ref_avg_logps"] = torch.tensor([p.ref_avg_logps[0] for p in pairs] +
                                              [p.ref_avg_logps[1] for p in pairs])
    return batch


def collate_unpaired(units: Sequence, pad_id: int) -> dict[str, torch.Tensor]:
    """KTO's batch: padded completions, their labels and reference log-probs."""
    from llmlab.data.sft import collate_padded

    batch = collate_padded([u.example for u in units], pad_id)
    batch["desirable"] = torch.tensor([u.desirable for u in units])
    batch["ref_logps"] = torch.tensor([u.ref_logp for u in units])
    return batch


def make_eval_fn(val_units: Sequence, objective, pad_id: int, device, batch_size: int, max_batches: int = 0,
                 collate: Callable = collate_with_reference) -> Callable[[torch.nn.Module], dict[str, float]]:
    """Validation loss, reward accuracy and margin, overall and by reason tag, of a DPOLoss on pairs
    or a KTOLoss on unpaired examples (collate_unpaired)."""
    from llmlab.data.sft import evaluated_units, fixed_batches

    units = evaluated_units(val_units, batch_size, max_batches)
    batches = fixed_batches(units, batch_size, lambda u: collate(u, pad_id))

    def score(model, batch):
        return objective.scores(response_logps(model, batch, objective.average), batch)

    return pairwise_eval_fn(units, batches, device, score, "val_reward_acc")


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
        if run.cfg.loss_type not in REFERENCE_FREE_LOSSES:
            # The reference is the model as loaded: score everything with it now, then it is no longer needed.
            attach_reference_logps(run.model, self.train + self.val, self.pad, run.device, run.cfg.batch_size,
                                   progress=run.cfg.progress)

    def objective(self, cfg: DPOConfig):
        return DPOLoss(cfg.beta, cfg.loss_type, cfg.label_smoothing, cfg.rpo_alpha, cfg.simpo_gamma, cfg.orpo_lambda)

    def build(self, run: FinetuneRun) -> Parts:
        from llmlab.data.sft import ShuffledBatches

        cfg, pad = run.cfg, self.pad
        objective = self.objective(cfg)
        batches = ShuffledBatches(self.train, cfg.batch_size, lambda u: self.collate(u, pad), seed=cfg.seed,
                                  rank=run.dist.rank, world_size=run.dist.world_size)
        return Parts(objective, batches, len(self.train), self.tokens_per_pair,
                     eval_fn=make_eval_fn(self.val, objective, pad, run.device, cfg.batch_size, cfg.eval_batches,
                                          self.collate))

    collate = staticmethod(collate_with_reference)

    def describe(self, run: FinetuneRun, trainer) -> str:
        name = {"sigmoid": "DPO", "ipo": "IPO"}.get(run.cfg.loss_type, run.cfg.loss_type.upper())
        return (f"{name} (beta {run.cfg.beta}): {trainer.state.total_steps} steps of "
                f"{run.units_per_step} {self.unit}; device {run.device}")

    unit = "pairs"

    def results(self, run: FinetuneRun, trainer) -> dict[str, Any]:
        return {**super().results(run, trainer), "beta": run.cfg.beta, "loss_type": run.cfg.loss_type}


class KTORecipe(DPORecipe):
    """KTO: the same command on unpaired completions (KTO records, or pairs split in two)."""

    unit = "examples"
    collate = staticmethod(collate_unpaired)

    def setup(self, run: FinetuneRun) -> None:
        from llmlab.data.sft import check_template, load_unpaired, pad_id_for, tokenize_unpaired

        self.template = check_template(run.cfg.template, run.tokenizer)

        def tokenize(records, skip_long):
            return tokenize_unpaired(records, self.template, run.tokenizer, run.max_len(), skip_long)

        self.train, self.val, _ = load_tokenized(run.cfg, "preferences", load_unpaired, tokenize, "examples",
                                                 run.max_len(), run.log)
        self.pad = pad_id_for(run.tokenizer)
        self.tokens_per_pair = sum(len(u.example) for u in self.train) / len(self.train)  # per example here
        units = self.train + self.val
        totals, _ = reference_logps(run.model, [u.example for u in units], self.pad, run.device,
                                    run.cfg.batch_size, progress=run.cfg.progress)
        for u, t in zip(units, totals):
            u.ref_logp = t

    def objective(self, cfg: DPOConfig):
        return KTOLoss(cfg.beta, cfg.desirable_weight, cfg.undesirable_weight)

    def results(self, run: FinetuneRun, trainer) -> dict[str, Any]:
        return {**trainer.state.last_eval, "examples": len(self.train), "beta": run.cfg.beta,
                "loss_type": run.cfg.loss_type}


def run_dpo(cfg: DPOConfig, resume: bool | str = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    return run_finetune(cfg, resume, log, KTORecipe() if cfg.loss_type == "kto" else DPORecipe())
