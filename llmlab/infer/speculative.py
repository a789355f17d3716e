"""Speculative decoding: a small draft model proposes tokens, the target model checks them all in
one forward pass, and exact rejection sampling keeps the output distributed as the target's alone
(Leviathan et al. 2023, "Fast Inference from Transformers via Speculative Decoding"; Chen et al.
2023, "Accelerating Large Language Model Decoding with Speculative Sampling").

One round, for draft tokens x_1..x_k sampled from the draft's distributions q_1..q_k:
  - the target scores [pending token, x_1..x_k] in one forward: p_1..p_{k+1};
  - x_i is accepted with probability min(1, p_i(x_i) / q_i(x_i)), in order;
  - at the first rejection the token is drawn from max(0, p_i - q_i), normalised, and the round ends;
  - if all k are accepted, a bonus token is drawn from p_{k+1}.
So each target forward yields between 1 and k + 1 tokens. p and q are the distributions sampling
would draw from (temperature, top-k, top-p, min-p applied to both, `sampling.filtered_probs`);
greedy decoding accepts a draft token iff it is the target's argmax, which gives plain greedy
output token for token. Both models keep a KV cache; rejected columns are dropped by moving the
cache's write pointer back.

One sequence at a time (batch 1, the latency case speculation is for).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from llmlab.errors import ConfigError
from llmlab.infer.detokenize import TextAssembler
from llmlab.infer.engine import Engine, GenerationResult
from llmlab.infer.params import GenerationConfig
from llmlab.infer.sampling import SamplerRow, filtered_probs, sample_from_probs

DEFAULT_DRAFT_TOKENS = 4


@dataclass
class SpeculativeStats:
    proposed: int = 0  # draft tokens offered to the target
    accepted: int = 0  # of those, accepted
    target_forwards: int = 0  # verification passes (the prompt's prefill not counted)
    draft_forwards: int = 0
    tokens: int = 0  # tokens generated

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.proposed if self.proposed else None

    @property
    def tokens_per_target_forward(self) -> float | None:
        return self.tokens / self.target_forwards if self.target_forwards else None

    def add(self, other: "SpeculativeStats") -> None:
        for name in ("proposed", "accepted", "target_forwards", "draft_forwards", "tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, Any]:
        return {"draft_tokens_proposed": self.proposed, "draft_tokens_accepted": self.accepted,
                "acceptance_rate": self.acceptance_rate, "target_forwards": self.target_forwards,
                "tokens_per_target_forward": self.tokens_per_target_forward}


def verify(p: torch.Tensor, q: torch.Tensor, drafts: list[int], greedy: bool,
           generator: torch.Generator | None) -> tuple[int, int]:
    """Rejection sampling of one round: p [k + 1, V] target, q [k, V] draft distributions, the k
    draft tokens. Returns (number accepted, the token that follows them)."""
    for i, x in enumerate(drafts):
        if greedy:
            if x == int(p[i].argmax()):
                continue
            return i, int(p[i].argmax())
        u = torch.rand((), generator=generator)
        if float(u) * float(q[i, x]) < float(p[i, x]):  # u < p/q without dividing by a zero q
            continue
        residual = (p[i] - q[i]).clamp(min=0)
        if float(residual.sum()) <= 0:  # p == q up to rounding: rejection had probability ~0
            residual = p[i]
        return i, int(sample_from_probs(residual[None], [generator])[0])
    k = len(drafts)
    token = int(p[k].argmax()) if greedy else int(sample_from_probs(p[k:k + 1], [generator])[0])
    return k, token


class SpeculativeDecoder:
    """Generation from `target` sped up by `draft` (a smaller model with the same tokenizer)."""

    def __init__(self, target, draft, tokenizer=None, draft_tokenizer=None, *,
                 num_draft_tokens: int = DEFAULT_DRAFT_TOKENS):
        if num_draft_tokens < 1:
            raise ConfigError(f"the number of draft tokens must be >= 1, got {num_draft_tokens}")
        if tokenizer is not None and draft_tokenizer is not None and tokenizer.fingerprint() != draft_tokenizer.fingerprint():
            raise ConfigError("the draft model's tokenizer differs from the target's; "
                              "speculative decoding needs a draft with the same tokenizer")
        if draft.config.vocab_size != target.config.vocab_size:
            raise ConfigError(f"the draft model's vocabulary ({draft.config.vocab_size}) differs from the target's "
                              f"({target.config.vocab_size}); speculative decoding needs the same tokenizer")
        self.target, self.draft, self.tokenizer = target, draft, tokenizer
        self.num_draft_tokens = num_draft_tokens
        self.engine = Engine(target, tokenizer, max_batch_size=1)  # settings, encoding and context rules
        self.context_length = min(target.config.context_length, draft.config.context_length)

    def make_config(self, config: GenerationConfig | None = None, **overrides: Any) -> GenerationConfig:
        return self.engine.make_config(config, **overrides)

    @torch.inference_mode()
    def generate(self, prompt: str | Sequence[int], config: GenerationConfig | None = None,
                 generator: torch.Generator | None = None, **overrides: Any) -> tuple[GenerationResult, SpeculativeStats]:
        """One prompt's continuation and the round statistics. `generator` overrides the config's seed."""
        config = self.make_config(config, **overrides)
        _check_supported(config)
        t0 = time.perf_counter()
        ids = self.engine.encode(prompt)
        if not ids:
            raise ConfigError("the prompt is empty; give at least one token (e.g. the end-of-text token)")
        ids, truncated, max_new = self.engine._fit(ids, config)
        if generator is None:
            generator = SamplerRow.from_config(config, "cpu").generator
        stop_ids = config.stop_token_set(self.tokenizer)
        text = TextAssembler(self.tokenizer, ids, config.stop, config.skip_special_tokens) if config.stop else None
        C = self.context_length
        tcache, dcache = self.target.new_kv_cache(1, C), self.draft.new_kv_cache(1, C)
        if any(hasattr(c, "rolling") and c.rolling(i) for c in (tcache, dcache) for i in range(len(c.keys))):
            raise ConfigError("speculative decoding needs full-attention KV caches (a sliding-window cache "
                              "cannot take rejected tokens back)")
        device = next(self.target.parameters()).device
        stats = SpeculativeStats()
        seq, out = list(ids), []
        finish, stop_reason, t_first = None, None, None
        if len(seq) > 1:  # every round feeds the target its pending (last) token first
            self.target(torch.tensor([seq[:-1]], device=device), kv_cache=tcache, num_logits_to_keep=1)

        def probs(logits: torch.Tensor) -> torch.Tensor:
            if config.greedy:
                return logits.float()  # only argmax is read
            return filtered_probs(logits, temperature=config.temperature, top_k=config.top_k,
                                  top_p=config.top_p, min_p=config.min_p)

        while finish is None:
            S = len(seq)
            k = max(0, min(self.num_draft_tokens, max_new - len(out) - 1, C - S))
            drafts, q = [], []
            for _ in range(k):
                feed = seq[dcache.length:] if not drafts else drafts[-1:]
                logits = self.draft(torch.tensor([feed], device=device), kv_cache=dcache, num_logits_to_keep=1).logits[0]
                q.append(probs(logits)[-1])
                x = int(q[-1].argmax()) if config.greedy else int(sample_from_probs(q[-1][None], [generator])[0])
                drafts.append(x)
            stats.draft_forwards += k
            logits = self.target(torch.tensor([seq[tcache.length:] + drafts], device=device), kv_cache=tcache,
                                 num_logits_to_keep=k + 1).logits[0]
            stats.target_forwards += 1
            n, token = verify(probs(logits), torch.stack(q) if q else None, drafts, config.greedy, generator)
            stats.proposed += k
            stats.accepted += n
            tcache.length = S + n  # the target keeps pending + accepted; `token` is the next pending
            if k:
                dcache.length = S + min(n, k - 1)
            for t in drafts[:n] + [token]:
                t_first = t_first or time.perf_counter()
                seq.append(t)
                out.append(t)
                stats.tokens += 1
                if t in stop_ids:
                    finish, stop_reason = "stop", t
                elif text is not None and text.add(t)[1]:
                    finish, stop_reason = "stop", text.stop_reason
                elif len(out) >= max_new or len(seq) >= C:
                    finish = "length"
                if finish is not None:
                    break
        result = GenerationResult(
            text=self._text(out, text, config, finish), token_ids=out, finish_reason=finish, stop_reason=stop_reason,
            prompt_token_ids=ids, prompt_truncated=truncated,
            time_to_first_token=(t_first - t0) if t_first else None, time_total=time.perf_counter() - t0,
        )
        return result, stats

    def _text(self, out: list[int], text: TextAssembler | None, config: GenerationConfig, finish: str) -> str:
        if text is not None:
            text.finish()
            return text.text
        if self.tokenizer is None:
            return ""
        ids = out[:-1] if finish == "stop" and out else out
        return self.tokenizer.decode(ids, skip_special_tokens=config.skip_special_tokens)


def _check_supported(config: GenerationConfig) -> None:
    unsupported = [name for name, on in (
        ("repetition_penalty", config.repetition_penalty != 1.0), ("frequency_penalty", config.frequency_penalty != 0),
        ("presence_penalty", config.presence_penalty != 0), ("min_new_tokens", bool(config.min_new_tokens)),
        ("logprobs", bool(config.logprobs or config.top_logprobs)),
    ) if on]
    if unsupported:
        raise ConfigError(f"speculative decoding does not support {', '.join(unsupported)}; "
                          "generate without --draft-model for these settings")
