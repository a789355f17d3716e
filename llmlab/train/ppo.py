"""RLHF with PPO: rollouts from the policy (through the generation engine), a reward from a reward
model or any Python callable, a per-token KL penalty to a frozen reference, a value head, GAE,
advantage whitening, and clipped policy and value losses, several epochs per rollout.

    llmlab ppo --policy runs/sft/checkpoint --reward sentiment --prompts tinyworld --out runs/ppo

How it reuses the one training loop: the rollout phase lives in the batch iterator (`PPOBatches`).
Each `next()` hands the loop one PPO minibatch; when a rollout's epochs x minibatches are used up,
the next call samples a fresh rollout with the current policy. So optimizer, schedule, clipping,
precision, checkpoints, metrics.jsonl and the progress bar are the loop's own, and one optimizer
step is one PPO minibatch update. The value head trains as the loop's extra parameters.

Per response (tokens t = 1..T, the last one the stop token if the policy stopped):
    kl_t    = log pi_old(a_t|s_t) - log ref(a_t|s_t)          (the k1 estimator)
    r_t     = -kl_coef * kl_t  (+ score on the last token; score - missing_eos_penalty without a stop token)
    A_t     = GAE(gamma, lam) over r_t and the value head's V(s_t); returns R_t = A_t + V(s_t)
    policy  = mean_t max(-A_t ratio_t, -A_t clip(ratio_t, 1 - eps, 1 + eps)),  ratio = pi / pi_old
    value   = 0.5 * mean_t max((V - R)^2, (clip(V, V_old +- eps_v) - R)^2)
kl_coef is fixed, or adapted towards --target-kl by the proportional controller of Ziegler et al.
(2019). Logged per step: reward (score), kl, kl_k1, kl_coef, entropy, clipfrac, approx_kl, value
loss; per rollout: rollouts.jsonl and reward_vs_kl.png; at the end loss_curve.png (reward and kl
per step). The KL shown (`kl`, per response, nats; also what --target-kl steers) is Schulman's k3
estimator, sum_t exp(d_t) - 1 - d_t with d_t = log ref - log pi_old: like k1 an unbiased estimate
of KL(pi_old || ref), but never negative and with lower variance; k1's per-sample values are
negative whenever the reference likes the sampled tokens more, so its batch mean can be too.
`kl_k1` is the k1 mean the penalty above uses.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from llmlab.config import IGNORE_INDEX
from llmlab.errors import ConfigError, DataError
from llmlab.model.heads import ScalarHead
from llmlab.train.finetune import FinetuneRecipe, FinetuneRun, Parts, run_finetune
from llmlab.train.finetune_config import PPOConfig
from llmlab.train.metrics_log import PLOT_FILE as LOSS_PLOT_FILE
from llmlab.train.metrics_log import plot_metric_curves, read_metrics
from llmlab.train.trainer import move_batch

VALUE_HEAD_FILE = "value_head.safetensors"
ROLLOUTS_FILE = "rollouts.jsonl"
PLOT_FILE = "reward_vs_kl.png"
# loss_curve.png of a PPO run: PPO's loss says little; what to watch is reward climbing while KL stays bounded.
CURVES = (("reward", "reward (mean score)"), ("kl", "KL to reference (k3, nats/response)"))
RewardFn = Callable[[Sequence[Any], Sequence[str]], Sequence[float]]


# ---------------------------------------------------------------------------- the maths (hand-checked in tests)
def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the masked entries (mean added back if not shift_mean)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return (out if shift_mean else out + mean) * mask.to(x.dtype)


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over [B, T] with `mask` marking each row's action steps
    (contiguous; the value after a row's last action is 0). Returns (advantages, returns)."""
    mask = mask.to(rewards.dtype)
    rewards, values = rewards * mask, values * mask
    T = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t] + last * (1 - mask[:, t])
        advantages[:, t] = last * mask[:, t]
    return advantages, (advantages + values) * mask


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                cliprange: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate (to minimise) and its diagnostics as 0-d tensors (the loop reads them
    once per log interval): clipfrac (share of tokens where the clip is active) and approx_kl
    (0.5 mean (log ratio)^2)."""
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped > unclipped).float(), mask),
                 "approx_kl": masked_mean(0.5 * log_ratio ** 2, mask)}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange_value: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss 0.5 * max((V - R)^2, (V_clipped - R)^2), V_clipped = V_old + clip(V - V_old)."""
    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    a, b = (values - returns) ** 2, (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(a, b), mask)
    return loss, {"vf_clipfrac": masked_mean((b > a).float(), mask).detach()}


def kl_penalised_rewards(scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor,
                         kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards -kl_coef * (logp - ref_logp), plus each row's score on its last action.
    Returns (rewards, per-token kl), both [B, T] and zero off the mask."""
    mask_f = mask.to(logp.dtype)
    kl = (logp - ref_logp) * mask_f
    rewards = -kl_coef * kl
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = (positions * mask.long()).max(dim=1).values
    rewards[torch.arange(mask.shape[0], device=mask.device), last] += scores.to(rewards.dtype)
    return rewards, kl


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || ref) for tokens sampled from the policy:
    exp(d) - 1 - d with d = ref_logp - logp (Schulman 2020). Never negative; zero off the mask."""
    d = (ref_logp - logp) * mask.to(logp.dtype)
    return torch.expm1(d) - d


class FixedKLController:
    def __init__(self, value: float):
        self.value = value

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController:
    """Ziegler et al. (2019): beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon)."""

    def __init__(self, value: float, target: float, horizon: int):
        self.value, self.target, self.horizon = value, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = float(np.clip(current_kl / self.target - 1.0, -0.2, 0.2))
        self.value *= 1.0 + error * n_steps / self.horizon


# ---------------------------------------------------------------------------- model passes
def response_logps_and_values(model, batch: dict[str, torch.Tensor], temperature: float = 1.0,
                              value_head: ScalarHead | None = None, with_entropy: bool = False):
    """Per-position log p(target) [B, T] (0 off the targets), values [B, T] if a head is given, and
    the policy's per-position entropy [B, T] if asked. Logits are divided by the rollout temperature,
    so log-probs are those of the distribution the responses were sampled from."""
    from llmlab.infer.scoring import token_logprobs

    out = model(batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=value_head is not None)
    logits = out.logits.float() / temperature
    logp = token_logprobs(logits, batch["targets"])
    values = value_head(out.hidden_states).float() if value_head is not None else None
    entropy = None
    if with_entropy:
        with torch.no_grad():
            lsm = logits.log_softmax(-1)
            entropy = -(lsm.exp() * lsm).sum(-1)
    return logp, values, entropy


class PPOLoss:
    """objective(policy, minibatch): clipped policy loss + vf_coef * clipped value loss."""

    def __init__(self, value_head: ScalarHead, cfg: PPOConfig):
        self.value_head, self.cfg = value_head, cfg

    def __call__(self, model, batch):
        cfg = self.cfg
        mask = batch["targets"] != IGNORE_INDEX
        logp, values, entropy = response_logps_and_values(model, batch, cfg.temperature, self.value_head, True)
        pg, pg_stats = policy_loss(logp, batch["old_logps"], batch["advantages"], mask, cfg.cliprange)
        vf, vf_stats = value_loss(values, batch["old_values"], batch["returns"], mask, cfg.cliprange_value)
        metrics = {"pg_loss": pg.detach(), "vf_loss": vf.detach(), "entropy": masked_mean(entropy, mask),
                   **pg_stats, **vf_stats}
        metrics.update({k[len("stat_"):]: v for k, v in batch.items() if k.startswith("stat_")})
        return pg + cfg.vf_coef * vf, metrics

    def weight(self, batch) -> float:
        return float(batch["input_ids"].shape[0])


# ---------------------------------------------------------------------------- rewards
def sentiment_reward(prompts: Sequence[Any], responses: Sequence[str]) -> list[float]:
    """VADER compound sentiment of each response, in [-1, 1] (TRL's "positive reviews" example)."""
    from llmlab.eval.bias import analyze_sentiment

    return [analyze_sentiment(r) for r in responses]


def resolve_reward(spec: str | RewardFn, device="cpu") -> RewardFn:
    """A reward function from --reward: a callable, 'sentiment', a reward-model directory, or 'module:function'."""
    if callable(spec):
        return spec
    if spec == "sentiment":
        return sentiment_reward
    if Path(spec).is_dir():
        from llmlab.train.reward import load_reward_model

        return load_reward_model(spec, device=device)
    if ":" in spec:
        import importlib

        module_name, _, attr = spec.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot load reward function {spec!r}: {exc}") from None
        if not callable(fn):
            raise ConfigError(f"{spec} is not callable")
        return fn
    raise ConfigError(f"--reward {spec!r} is not a reward-model directory, 'sentiment', or 'module:function'")


def score_responses(reward_fn: RewardFn, prompts: Sequence[Any], responses: Sequence[str]) -> torch.Tensor:
    scores = list(reward_fn(prompts, responses))
    if len(scores) != len(responses):
        raise DataError(f"the reward function returned {len(scores)} scores for {len(responses)} responses")
    out = torch.tensor([float(s) for s in scores], dtype=torch.float32)
    if not torch.isfinite(out).all():
        raise DataError("the reward function returned a non-finite score")
    return out


# ---------------------------------------------------------------------------- rollouts
def sample_responses(policy, tokenizer, prompt_ids: Sequence[list[int]], *, max_new_tokens: int, temperature: float,
                     seeds: Sequence[int]) -> list:
    """One sampled response per prompt through the engine (each with its own seed), pure sampling
    (no top-k/top-p), so the responses follow the policy's distribution at `temperature`."""
    from llmlab.infer import Engine, GenerationConfig

    engine = Engine(policy, tokenizer, max_batch_size=max(1, len(prompt_ids)))
    config = engine.make_config(GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_k=0,
                                                 top_p=1.0), truncation="left")
    ids = [engine.add_request(p, config.replace(seed=int(s))) for p, s in zip(prompt_ids, seeds)]
    results = engine.wait(ids)
    return [results[i] for i in ids]


def build_rollout_batch(prompt_ids: Sequence[list[int]], response_ids: Sequence[list[int]],
                        pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt+response rows: input_ids, attention_mask, and targets that hold each
    response token at the position that predicts it (IGNORE_INDEX elsewhere)."""
    rows = [list(p) + list(r) for p, r in zip(prompt_ids, response_ids)]
    T = max(len(r) for r in rows)
    B = len(rows)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    targets = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompt_ids, response_ids)):
        n = len(p) + len(r)
        ids[i, :n], mask[i, :n] = torch.tensor(rows[i]), 1
        if r:
            targets[i, len(p) - 1:n - 1] = torch.tensor(r)
    return {"input_ids": ids, "attention_mask": mask, "targets": targets}


class PPOBatches:
    """The rollout phase as the loop's batch iterator (see the module docstring).

    state_dict holds the number of rollouts sampled, the KL coefficient and the minibatches of the
    current rollout not yet trained on, so a run stopped in the middle of a rollout (Ctrl-C stops at
    any step) resumes with exactly the updates it would have made."""

    def __init__(self, policy, value_head: ScalarHead, ref, tokenizer, prompts: Sequence, rendered: Sequence[str],
                 reward_fn: RewardFn, cfg: PPOConfig, device, *, log_dir: Path | None = None,
                 log: Callable[[str], None] = print):
        self.policy, self.value_head, self.ref, self.tokenizer = policy, value_head, ref, tokenizer
        self.prompts, self.reward_fn, self.cfg, self.device = list(prompts), reward_fn, cfg, device
        C = policy.config.context_length
        room = C - cfg.max_new_tokens
        if room < 1:
            raise ConfigError(f"max_new_tokens {cfg.max_new_tokens} leaves no room for a prompt in the context of {C}")
        self.prompt_ids = [tokenizer.encode(p)[-room:] for p in rendered]
        if any(not p for p in self.prompt_ids):
            raise DataError("a prompt renders to no tokens")
        self.kl = (AdaptiveKLController(cfg.kl_coef, cfg.target_kl, cfg.kl_horizon) if cfg.target_kl
                   else FixedKLController(cfg.kl_coef))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stop_ids = set(tokenizer.stop_token_ids)
        self.rollouts_done = 0
        self.queue: list[dict[str, torch.Tensor]] = []
        self.history: list[dict[str, float]] = []
        self.log_dir, self.log = log_dir, log
        self.last_samples: list[tuple[str, str, float]] = []

    # the Batches protocol
    def __next__(self) -> dict[str, torch.Tensor]:
        if not self.queue:
            self.queue = self.rollout()
        return self.queue.pop(0)

    def state_dict(self) -> dict:
        return {"rollouts": self.rollouts_done, "kl_coef": self.kl.value, "queue": list(self.queue)}

    def load_state_dict(self, state: dict) -> None:
        self.rollouts_done, self.kl.value = int(state["rollouts"]), float(state["kl_coef"])
        # Checkpoints from before the queue was saved start a fresh rollout instead.
        self.queue = [{k: v.cpu() for k, v in mb.items()} for mb in state.get("queue", [])]

    def _prompt_indices(self) -> list[int]:
        """Rollout k's prompts: the next slice of a per-epoch permutation (seeded, so reproducible)."""
        n, B = len(self.prompts), self.cfg.rollout_batch
        out = []
        for i in range(self.rollouts_done * B, (self.rollouts_done + 1) * B):
            perm = np.random.default_rng([self.cfg.seed, i // n]).permutation(n)
            out.append(int(perm[i % n]))
        return out

    @torch.no_grad()
    def rollout(self) -> list[dict[str, torch.Tensor]]:
        cfg = self.cfg
        idx = self._prompt_indices()
        prompt_ids = [self.prompt_ids[i] for i in idx]
        seeds = [cfg.seed * 1_000_003 + self.rollouts_done * cfg.rollout_batch + j for j in range(len(idx))]
        self.policy.eval()
        results = sample_responses(self.policy, self.tokenizer, prompt_ids, max_new_tokens=cfg.max_new_tokens,
                                   temperature=cfg.temperature, seeds=seeds)
        responses = [r.token_ids for r in results]
        texts = [r.text for r in results]
        ended = torch.tensor([bool(r.token_ids) and r.token_ids[-1] in self.stop_ids for r in results])
        batch = move_batch(build_rollout_batch(prompt_ids, responses, self.pad_id), self.device)
        mask = batch["targets"] != IGNORE_INDEX
        logp, values, _ = response_logps_and_values(self.policy, batch, cfg.temperature, self.value_head)
        ref_logp = reference_logps(self.ref, self.policy, batch, cfg.temperature)
        scores = score_responses(self.reward_fn, [self.prompts[i] for i in idx], texts)
        penalised = scores.clone()
        if cfg.missing_eos_penalty is not None:
            penalised[~ended] -= cfg.missing_eos_penalty
        rewards, kl = kl_penalised_rewards(penalised.to(self.device), logp, ref_logp, mask, self.kl.value)
        advantages, returns = gae(rewards, values, mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            advantages = whiten(advantages, mask)
        seq_kl = kl.sum(1)  # k1, the penalty's estimate
        stats = {
            "reward": float(scores.mean()), "reward_std": float(scores.std()) if len(scores) > 1 else 0.0,
            "kl": float(kl_k3(logp, ref_logp, mask).sum(1).mean()), "kl_k1": float(seq_kl.mean()),
            "kl_coef": self.kl.value, "eos_rate": float(ended.float().mean()),
            "response_len": float(mask.sum(1).float().mean()),
            "non_score_reward": float((-self.kl.value * seq_kl).mean()),
        }
        self.kl.update(stats["kl"], cfg.rollout_batch)
        self.rollouts_done += 1
        self._record(stats, [self.prompts[i] for i in idx], texts, scores)

        data = {**batch, "old_logps": logp, "old_values": values, "advantages": advantages, "returns": returns}
        data = {k: v.detach().cpu() for k, v in data.items()}
        minibatches = []
        gen = np.random.default_rng([cfg.seed, 7, self.rollouts_done])
        for _ in range(cfg.ppo_epochs):
            order = gen.permutation(cfg.rollout_batch)
            for s in range(0, cfg.rollout_batch, cfg.minibatch_size):
                rows = torch.from_numpy(order[s:s + cfg.minibatch_size])
                mb = {k: v[rows] for k, v in data.items()}
                width = int(mb["attention_mask"].sum(1).max())  # drop columns that are padding in every row
                mb = {k: v[:, :width] for k, v in mb.items()}
                mb.update({f"stat_{k}": torch.tensor(v) for k, v in stats.items()})
                minibatches.append(mb)
        return minibatches

    def _record(self, stats: dict[str, float], prompts, texts, scores) -> None:
        record = {"rollout": self.rollouts_done, **stats}
        self.history.append(record)
        self.last_samples = [(str(p)[-60:], t, float(s)) for p, t, s in zip(prompts[:2], texts[:2], scores[:2])]
        if self.log_dir is not None:
            with open(self.log_dir / ROLLOUTS_FILE, "a") as f:
                f.write(json.dumps(record) + "\n")


def reference_logps(ref, policy, batch: dict[str, torch.Tensor], temperature: float) -> torch.Tensor:
    """Reference log-probs: the frozen copy, or the policy with its LoRA adapters switched off."""
    if ref is not None:
        return response_logps_and_values(ref, batch, temperature)[0]
    from llmlab.model.lora import adapters_disabled

    with adapters_disabled(policy):
        return response_logps_and_values(policy, batch, temperature)[0]


def plot_reward_vs_kl(history: Sequence[dict[str, float]], path: str | Path, title: str = "PPO") -> Path | None:
    """Two panels: reward and KL per rollout; reward against KL (the trade-off PPO walks along)."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["rollout"] for h in history]
    reward, kl = [h["reward"] for h in history], [h["kl"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    a.plot(steps, reward, "o-", color="tab:green", label="reward (mean score)")
    a.set_xlabel("rollout")
    a.set_ylabel("reward", color="tab:green")
    a2 = a.twinx()
    a2.plot(steps, kl, "s--", color="tab:red", label="KL to reference")
    a2.set_ylabel("KL (nats per response)", color="tab:red")
    a.set_title(f"{title}: reward and KL per rollout")
    a.grid(alpha=0.3)
    sc = b.scatter(kl, reward, c=steps, cmap="viridis")
    b.plot(kl, reward, color="grey", alpha=0.4, linewidth=0.8)
    fig.colorbar(sc, ax=b, label="rollout")
    b.set_xlabel("KL to reference (nats per response)")
    b.set_ylabel("reward")
    b.set_title("reward vs KL")
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


# ---------------------------------------------------------------------------- the run
def resolve_prompts(spec: str, seed: int = 0):
    """PromptExamples from --prompts: a file, a tinyworld folder, or 'tinyworld'."""
    from llmlab.data.formats import load_prompts

    root = Path(spec)
    if spec == "tinyworld":
        from llmlab.train.finetune import tinyworld_dir

        root = tinyworld_dir(seed)
    if root.is_dir():
        for candidate in (root / "probes" / "story_prompts.jsonl", root / "prompts.jsonl"):
            if candidate.is_file():
                return load_prompts(candidate), candidate
        raise DataError(f"{root} holds no probes/story_prompts.jsonl (or prompts.jsonl)")
    return load_prompts(root), root


class PPORecipe(FinetuneRecipe):
    outputs = (ROLLOUTS_FILE, PLOT_FILE)
    needs = (VALUE_HEAD_FILE,)
    one_process = "PPO runs in one process (rollouts and the value head are not distributed yet)"

    def setup(self, run: FinetuneRun) -> None:
        from llmlab.data.sft import render_prompt

        cfg = run.cfg
        self.prompts, self.source = resolve_prompts(cfg.data, cfg.tinyworld_seed)
        self.template = cfg.template
        if self.template == "auto":
            self.template = "chatml" if any(isinstance(p.prompt, list) for p in self.prompts) else "plain"
        self.rendered = [render_prompt(p.prompt, self.template, run.tokenizer) for p in self.prompts]
        self.reward_fn = resolve_reward(cfg.reward, run.device)

    def build(self, run: FinetuneRun) -> Parts:
        cfg, policy = run.cfg, run.model
        # With LoRA the reference is the base model itself (adapters off); otherwise a frozen copy.
        ref = None if run.lora is not None else copy.deepcopy(policy).eval().requires_grad_(False)
        value_head = ScalarHead(policy.config.d_model).to(run.device)
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        if not run.resuming:
            (self.out / ROLLOUTS_FILE).unlink(missing_ok=True)
        self.batches = PPOBatches(policy, value_head, ref, run.tokenizer, [p.prompt for p in self.prompts],
                                  self.rendered, self.reward_fn, cfg, run.device, log_dir=self.out, log=run.log)
        return Parts(PPOLoss(value_head, cfg), self.batches, len(self.prompts), cfg.max_new_tokens + 16,
                     heads={VALUE_HEAD_FILE: value_head})

    def resumed(self, run: FinetuneRun) -> None:
        history = [json.loads(line) for line in (self.out / ROLLOUTS_FILE).read_text().splitlines() if line.strip()]
        self.batches.history = [h for h in history if h["rollout"] <= self.batches.rollouts_done]

    def describe(self, run: FinetuneRun, trainer) -> str:
        cfg = run.cfg
        target = f" -> target {cfg.target_kl}" if cfg.target_kl else ""
        return (f"PPO: {cfg.rollouts} rollouts of {cfg.rollout_batch} responses from {len(self.prompts)} prompts "
                f"({self.source}), {cfg.ppo_epochs} epochs x {cfg.rollout_batch // cfg.minibatch_size} minibatches "
                f"({trainer.state.total_steps} updates at most); reward {cfg.reward}; "
                f"template {self.template}; kl_coef {cfg.kl_coef}{target}")

    def results(self, run: FinetuneRun, trainer) -> dict[str, Any]:
        out, h = self.out, self.batches.history
        plot_reward_vs_kl(h, out / PLOT_FILE)
        plot_metric_curves(read_metrics(out), out / LOSS_PLOT_FILE, CURVES, "PPO: reward and KL per update")
        return dict(
            rollouts=len(h), reward_first=h[0]["reward"] if h else None, reward_last=h[-1]["reward"] if h else None,
            kl_last=h[-1]["kl"] if h else None, kl_max=max(x["kl"] for x in h) if h else None,
            kl_coef=self.batches.kl.value, plot=str(out / PLOT_FILE), samples=self.batches.last_samples,
        )


def run_ppo(cfg: PPOConfig, resume: bool | str = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    return run_finetune(cfg, resume, log, PPORecipe())
