"""Settings of the fine-tuning commands (sft, reward, dpo, ppo): dataclasses whose fields are the
CLI flags one-to-one, like `TrainConfig` (which they extend with what fine-tuning adds).

Kept free of torch so that `llmlab --help` stays instant; the runs live in sft.py, reward.py,
dpo.py and ppo.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmlab.errors import ConfigError, DataError
from llmlab.train.config import TrainConfig, _opt

# TrainConfig fields that only mean something for pre-training from scratch; fine-tuning commands hide them.
PRETRAIN_ONLY = ("preset", "model_config", "init_from", "sample_prompt", "eval_windows", "global_batch_tokens")
DPO_LOSSES = ("sigmoid", "ipo", "kto", "orpo", "simpo")
REFERENCE_FREE_LOSSES = ("orpo", "simpo")  # no reference model: its log-prob pass is skipped
EPOCHS_PLACEHOLDER = 10**12  # max_steps until --epochs is converted into steps


def is_builtin_data(data: str) -> bool:
    """--data names tinyworld's generated data: "tinyworld", or a complete tinyworld folder."""
    if data == "tinyworld":
        return True
    from llmlab.data.tinyworld import read_manifest

    try:
        read_manifest(data)
    except DataError:
        return False
    return True


@dataclass
class FinetuneConfig(TrainConfig):
    """Settings every fine-tuning command shares (TrainConfig's loop settings plus these)."""

    model: str = _opt("", "Checkpoint directory to start from (e.g. a pre-trained or SFT model).", path=True)
    data: str = _opt("tinyworld", "Training data: a JSONL/JSON file, a tinyworld folder, or 'tinyworld' to "
                     "generate one (seed --tinyworld-seed, cached in .llmlab-cache/).", path=True)
    val_data: str | None = _opt(None, "Validation file (default: the folder's val.jsonl, else --val-fraction of "
                                "the data).", path=True)
    val_fraction: float = _opt(0.05, "Share of the training records held out when there is no validation file.")
    tinyworld_seed: int = _opt(0, "World seed for --data tinyworld; use the seed your model was pre-trained on.")
    template: str = _opt("auto", "chatml (the tokenizer's chat template), plain (prompt + completion + eos; the "
                         "lesson's Instruction/Input/Output text for alpaca records), or auto (chatml if available).")
    skip_long: bool | None = _opt(None, "Drop records longer than the context (and report how many) instead of "
                                  "stopping with an error. Default: on for tinyworld's data (--data tinyworld or a "
                                  "tinyworld folder), off for your own files.")
    epochs: float | None = _opt(None, "Passes over the training data (another way to give the budget; "
                                "default 1 when no other budget is given).")
    grad_accum: int = _opt(1, "Micro-batches per optimizer step (gradient accumulation).")
    eval_batches: int = _opt(16, "Validation batches per evaluation (0: all).")
    lora_rank: int = _opt(0, "LoRA rank; 0 trains every weight (full fine-tuning).")
    lora_alpha: float = _opt(16.0, "LoRA alpha: the adapter update is scaled by alpha / rank.")
    lora_dropout: float = _opt(0.0, "Dropout on the adapters' input.")
    lora_targets: str = _opt("all", "Comma-separated projections to adapt: q,k,v (slices of the fused qkv), qkv "
                             "(one adapter on the fused matrix), o, gate, up, down, or all.")
    # Fine-tuning defaults differ from pre-training's.
    lr: float = _opt(1e-3, "Peak learning rate.")
    warmup_steps: int = _opt(20, "Linear warmup steps.")
    weight_decay: float = _opt(0.0, "AdamW decoupled weight decay (matrices only).")
    eval_every: int = _opt(50, "Evaluate on the validation set every N steps (and at the end).")
    save_every: int = _opt(200, "Write the checkpoint every N steps (and at the end).")
    samples: int = _opt(0, "Validation prompts to answer (greedy) at each evaluation (0: none).")

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("--model is required (the checkpoint to fine-tune)")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"epochs must be positive, got {self.epochs}")
        if self.grad_accum < 1:
            raise ConfigError(f"grad_accum must be >= 1, got {self.grad_accum}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.lora_rank < 0:
            raise ConfigError(f"lora_rank must be >= 0, got {self.lora_rank}")
        if self.skip_long is None:
            # The built-in data has some records longer than a small model's context; a user's own
            # file should fail loudly instead, so nothing of theirs is dropped unasked.
            self.skip_long = is_builtin_data(self.data)
        if self.max_steps is None and self.max_tokens is None and self.minutes is None:
            # Fine-tuning's natural budget is passes over the data (one by default); the runner turns
            # it into steps once the data is loaded (plan_budget), replacing this placeholder.
            self.epochs = self.epochs or 1.0
            self.max_steps = EPOCHS_PLACEHOLDER
        if self.lora_rank:
            self.lora_config()  # check alpha, dropout and targets now, before any work
        super().validate()

    def lora_config(self):
        if self.lora_rank <= 0:
            return None
        from llmlab.model.lora import LoRAConfig

        return LoRAConfig(rank=self.lora_rank, alpha=self.lora_alpha, dropout=self.lora_dropout,
                          targets=self.lora_targets)


@dataclass
class SFTConfig(FinetuneConfig):
    packing: bool = _opt(True, "Pack short examples into full windows (no attention or position leakage between "
                         "them); --no-packing pads each batch instead.")
    completion_only: bool = _opt(True, "Train only on completion/assistant tokens (and the end-of-turn token); "
                                 "--no-completion-only trains on every token.")
    samples: int = _opt(1, "Validation prompts to answer (greedy) at each evaluation (0: none).")


@dataclass
class RewardConfig(FinetuneConfig):
    margin: float = _opt(0.0, "Bradley-Terry margin m: loss -log sigmoid(r_chosen - r_rejected - m).")
    lr: float = _opt(5e-4, "Peak learning rate.")


@dataclass
class DPOConfig(FinetuneConfig):
    beta: float = _opt(0.1, "DPO beta: strength of the implicit KL constraint to the reference (smaller: drift "
                       "further); also KTO's beta and SimPO's reward scale (the SimPO paper uses 2-2.5). ORPO "
                       "ignores it (see --orpo-lambda).")
    loss_type: str = _opt("sigmoid", "Preference loss: sigmoid (DPO), ipo (identity preference optimisation), kto "
                          "(Kahneman-Tversky: unpaired good/bad completions; pairs are split into a desirable and an "
                          "undesirable example), orpo (odds ratio + NLL, no reference model) or simpo (length-"
                          "normalised, with a margin; no reference model). --loss-type is the same option.",
                          flags=("--loss", "--loss-type"))
    label_smoothing: float = _opt(0.0, "Conservative DPO: assumed share of flipped preference labels (sigmoid "
                                  "loss only).")
    rpo_alpha: float = _opt(0.0, "Weight of an extra NLL loss on the chosen responses (RPO, Pang et al. 2024; TRL's "
                            "rpo_alpha). DPO can lower the chosen answers' likelihood along with the rejected "
                            "ones' and garble them; 1.0 keeps them fluent. 0: plain DPO.")
    simpo_gamma: float = _opt(0.5, "SimPO's target margin gamma: loss -log sigmoid(beta (avg log p(chosen) - avg "
                              "log p(rejected)) - gamma) (TRL's simpo_gamma; the paper uses beta 2-2.5 and gamma/beta "
                              "about 0.5).")
    orpo_lambda: float = _opt(0.1, "ORPO's weight lambda of the odds-ratio term added to the chosen responses' NLL "
                              "(TRL's ORPO calls it beta; here --beta stays DPO's).")
    desirable_weight: float = _opt(1.0, "KTO's lambda_D: weight of the desirable examples' losses.")
    undesirable_weight: float = _opt(1.0, "KTO's lambda_U: weight of the undesirable examples' losses.")
    lr: float = _opt(2e-4, "Peak learning rate.")

    def validate(self) -> None:
        if self.beta <= 0:
            raise ConfigError(f"beta must be positive, got {self.beta}")
        if self.loss_type not in DPO_LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(DPO_LOSSES)}, got {self.loss_type!r}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.rpo_alpha < 0:
            raise ConfigError(f"rpo_alpha must be >= 0, got {self.rpo_alpha}")
        for name in ("simpo_gamma", "orpo_lambda", "desirable_weight", "undesirable_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.desirable_weight == self.undesirable_weight == 0:
            raise ConfigError("desirable_weight and undesirable_weight cannot both be 0")
        super().validate()


@dataclass
class PPOConfig(FinetuneConfig):
    policy: str = _opt("", "Checkpoint directory of the policy to optimise (usually an SFT model); also the "
                       "frozen reference.", path=True)
    prompts: str = _opt("tinyworld", "Prompts: a JSONL file ('prompt', 'messages', 'instruction' or 'text'), a .txt "
                        "file "
                        "(one per line), a tinyworld folder (probes/story_prompts.jsonl), or 'tinyworld'.",
                        path=True)
    reward: str = _opt("sentiment", "Reward: a reward-model checkpoint directory (from `llmlab reward`), 'sentiment' "
                       "(VADER compound score of the response), or 'module:function' taking (prompts, responses) "
                       "and returning one number per response.", path=True)
    rollouts: int = _opt(20, "PPO iterations: each samples --rollout-batch responses, then runs --ppo-epochs over "
                         "them.")
    max_steps: int | None = _opt(None, "Stop after this many PPO updates (optimizer steps, one per minibatch); "
                                 "--rollouts gives rollouts x ppo-epochs x rollout-batch/minibatch-size of them, "
                                 "and the smaller wins (as does --minutes, whichever comes first).")
    rollout_batch: int = _opt(32, "Prompts (responses) per rollout.")
    minibatch_size: int = _opt(8, "Responses per PPO minibatch (one optimizer step each).")
    ppo_epochs: int = _opt(2, "Passes over each rollout.")
    max_new_tokens: int = _opt(40, "Tokens per response at most.")
    temperature: float = _opt(1.0, "Sampling temperature of rollouts (1: the policy's own distribution).")
    kl_coef: float = _opt(0.05, "Per-token KL penalty coefficient (the starting value when --target-kl is set).")
    target_kl: float | None = _opt(None, "Adapt the KL coefficient to keep the per-response KL near this value (nats).")
    kl_horizon: int = _opt(10000, "Adaptive KL controller horizon, in responses.")
    cliprange: float = _opt(0.2, "PPO clip range of the probability ratio.")
    cliprange_value: float = _opt(0.2, "Clip range of the value function update.")
    vf_coef: float = _opt(0.1, "Weight of the value loss.")
    gamma: float = _opt(1.0, "Discount factor.")
    lam: float = _opt(0.95, "GAE lambda.")
    whiten_advantages: bool = _opt(True, "Normalise advantages to mean 0, std 1 over each rollout.")
    missing_eos_penalty: float | None = _opt(None, "Subtract this from the reward of responses that did not end "
                                             "with an end-of-text/end-of-turn token.")
    template: str = _opt("auto", "How prompts are shown to the policy: chatml (as a user turn of the chat template), "
                         "plain (the text as is), or auto (chatml for conversational prompt records, else plain).")
    lr: float = _opt(3e-5, "Peak learning rate.")
    warmup_steps: int = _opt(0, "Linear warmup steps.")
    schedule: str = _opt("constant", "Learning-rate schedule after warmup: cosine, wsd or constant.")
    model: str = _opt("", "(set by --policy)", path=True)
    data: str = _opt("", "(set by --prompts)", path=True)

    def validate(self) -> None:
        self.model = self.policy or self.model
        self.data = self.prompts or self.data
        if not self.model:
            raise ConfigError("--policy is required (the checkpoint to optimise)")
        for name in ("rollouts", "rollout_batch", "minibatch_size", "ppo_epochs", "max_new_tokens", "kl_horizon"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rollout_batch % self.minibatch_size:
            raise ConfigError(f"rollout_batch ({self.rollout_batch}) must be a multiple of minibatch_size "
                              f"({self.minibatch_size})")
        if self.temperature <= 0:
            raise ConfigError("temperature must be > 0: PPO needs sampled responses")
        if self.kl_coef < 0 or (self.target_kl is not None and self.target_kl <= 0):
            raise ConfigError("kl_coef must be >= 0 and target_kl > 0")
        if not 0 < self.cliprange < 1:
            raise ConfigError(f"cliprange must be in (0, 1), got {self.cliprange}")
        updates = self.rollouts * self.ppo_epochs * (self.rollout_batch // self.minibatch_size)
        if not hasattr(self, "_max_steps_given"):
            self._max_steps_given = self.max_steps
        given = self._max_steps_given
        self.max_steps = updates if given is None else min(given, updates)
        self.batch_size = self.minibatch_size
        super().validate()

    def to_dict(self) -> dict:
        # Saved as given, not as derived from --rollouts: a resumed run given more --rollouts gets them.
        data = super().to_dict()
        data["max_steps"] = getattr(self, "_max_steps_given", self.max_steps)
        return data
