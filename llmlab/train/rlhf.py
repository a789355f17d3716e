"""The lesson's `RLHFTrainer`, with its method names, over llmlab's parts.

    trainer = RLHFTrainer(policy, reward_model, ref_model, tokenizer)
    responses = trainer.generate(prompts)                      # through the engine
    rewards = trainer.compute_rewards(prompts, responses)      # score - kl_coeff * (log pi - log ref)
    old = trainer.get_logprobs(trainer.policy, prompts, responses)
    loss = trainer.ppo_step(prompts, responses, old, rewards)  # one clipped update, returns the loss

It does what the lesson's sketch means, at the lesson's granularity: one log-probability per
response (the sum over its tokens), advantages = rewards - mean(rewards), ratio clipped to
[0.8, 1.2]. Differences, each a fix: the sketch never updates the policy (`ppo_step` here takes one
optimizer step of llmlab's training loop, with clipping and the schedule), and computes the reward
model's scores and the KL term with gradients (here without). The full algorithm (per-token KL
penalty, value head, GAE, whitening, several epochs, clipped value loss) is `llmlab.train.ppo`,
which `llmlab ppo` runs.

`reward_model` may be a `llmlab.model.heads.RewardModel`, the scorer `load_reward_model` returns,
or any callable (prompts, responses) -> scores, e.g. `llmlab.train.ppo.sentiment_reward`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from llmlab.errors import ConfigError
from llmlab.train.config import TrainConfig
from llmlab.train.trainer import Trainer


class _LessonPPOLoss:
    """The lesson's clipped objective on whole-response log-probabilities."""

    def __init__(self, cliprange: float):
        self.cliprange = cliprange

    def __call__(self, model, batch):
        from llmlab.train.ppo import response_logps_and_values

        new_logprobs = response_logps_and_values(model, batch)[0].sum(1)
        ratio = torch.exp(new_logprobs - batch["old_logprobs"])
        advantages = batch["rewards"] - batch["rewards"].mean()
        surr1 = ratio * advantages
        surr2 = torch.clamp(ratio, 1 - self.cliprange, 1 + self.cliprange) * advantages
        loss = -torch.min(surr1, surr2).mean()
        ratio = ratio.detach()
        clipfrac = float(((ratio - 1).abs() > self.cliprange).float().mean())
        return loss, {"clipfrac": clipfrac, "ratio": float(ratio.mean())}

    def weight(self, batch) -> float:
        return float(batch["input_ids"].shape[0])


class RLHFTrainer:
    def __init__(self, policy_model, reward_model, ref_model, tokenizer=None, *, kl_coeff: float = 0.1,
                 learning_rate: float = 1e-5, cliprange: float = 0.2, out_dir: str = ".llmlab-lesson-rlhf"):
        from llmlab.train.lesson import _Queue

        if tokenizer is None:
            raise ConfigError("RLHFTrainer needs the policy's tokenizer: "
                              "RLHFTrainer(policy, reward_model, ref_model, tokenizer)")
        self.policy = policy_model
        self.reward_model = reward_model
        self.ref_model = ref_model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.kl_coeff = kl_coeff
        self._scorer = self._as_scorer(reward_model)
        cfg = TrainConfig(data="-", out=out_dir, max_steps=10**9, lr=learning_rate, weight_decay=0.0, warmup_steps=0,
                          schedule="constant", progress=False, precision="fp32")
        self._queue = _Queue()
        self.loop = Trainer(policy_model, _LessonPPOLoss(cliprange), self._queue, cfg,
                            device=next(policy_model.parameters()).device, log=lambda *_: None)
        self.loop.metrics.enabled = False
        self.optimizer = self.loop.optimizer

    def _as_scorer(self, reward_model) -> Callable[[Sequence[str], Sequence[str]], Sequence[float]]:
        from llmlab.model.heads import RewardModel

        if isinstance(reward_model, RewardModel):
            from llmlab.data.sft import default_template
            from llmlab.train.reward import RewardScorer

            return RewardScorer(reward_model, self.tokenizer, default_template(self.tokenizer))
        if not callable(reward_model):
            raise ConfigError("reward_model must be a RewardModel or a callable (prompts, responses) -> scores")
        return reward_model

    # ------------------------------------------------------------------ the lesson's methods
    def _batch(self, prompts: Sequence[str], responses: Sequence[str]) -> dict[str, torch.Tensor]:
        from llmlab.infer.scoring import encode_pair
        from llmlab.train.ppo import build_rollout_batch

        if len(prompts) != len(responses):
            raise ConfigError(f"{len(prompts)} prompts but {len(responses)} responses")
        pairs = [encode_pair(self.tokenizer, p, r) for p, r in zip(prompts, responses)]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        device = next(self.policy.parameters()).device
        batch = build_rollout_batch([c for c, _ in pairs], [x for _, x in pairs], pad)
        return {k: v.to(device) for k, v in batch.items()}

    def get_logprobs(self, model, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """log p(response | prompt) under `model`, summed over the response's tokens: [B]."""
        from llmlab.train.ppo import response_logps_and_values

        return response_logps_and_values(model, self._batch(prompts, responses))[0].sum(1)

    @torch.no_grad()
    def compute_rewards(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """Reward-model scores minus kl_coeff * (log pi - log ref) of each response: [B]."""
        scores = torch.tensor([float(s) for s in self._scorer(list(prompts), list(responses))])
        policy_logprobs = self.get_logprobs(self.policy, prompts, responses).cpu()
        ref_logprobs = self.get_logprobs(self.ref_model, prompts, responses).cpu()
        kl_penalty = self.kl_coeff * (policy_logprobs - ref_logprobs)
        return scores - kl_penalty

    def ppo_step(self, prompts: Sequence[str], responses: Sequence[str], old_logprobs: torch.Tensor,
                 rewards: torch.Tensor) -> torch.Tensor:
        """One clipped policy update (an optimizer step of the training loop); returns the loss."""
        batch = self._batch(prompts, responses)
        batch["old_logprobs"] = torch.as_tensor(old_logprobs, dtype=torch.float32).detach().reshape(-1).cpu()
        batch["rewards"] = torch.as_tensor(rewards, dtype=torch.float32).detach().reshape(-1).cpu()
        self._queue.batch = {k: v.cpu() for k, v in batch.items()}
        record = self.loop.train_step()
        self.last_metrics = record
        return torch.tensor(record["loss"])

    # ------------------------------------------------------------------ conveniences
    def generate(self, prompts: Sequence[str], max_new_tokens: int = 32, temperature: float = 1.0,
                 seed: int = 0) -> list[str]:
        """Sample one response per prompt with the policy (through the engine)."""
        from llmlab.train.ppo import sample_responses

        self.policy.eval()
        ids = [self.tokenizer.encode(p) for p in prompts]
        results = sample_responses(self.policy, self.tokenizer, ids, max_new_tokens=max_new_tokens,
                                   temperature=temperature, seeds=[seed + i for i in range(len(ids))])
        return [r.text for r in results]

    def step(self, prompts: Sequence[str], **generate_kwargs: Any) -> dict[str, float]:
        """generate -> compute_rewards -> ppo_step, the lesson's loop body; returns the step's numbers."""
        responses = self.generate(prompts, **generate_kwargs)
        rewards = self.compute_rewards(prompts, responses)
        with torch.no_grad():
            old = self.get_logprobs(self.policy, prompts, responses)
        loss = self.ppo_step(prompts, responses, old, rewards)
        return {"loss": float(loss), "reward": float(rewards.mean())}
