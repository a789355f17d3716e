"""Logits processors and samplers: from next-token logits to next tokens.

The processors are plain functions on a [batch, vocab] logits tensor whose parameters are either
Python numbers (one setting for the batch) or [batch, 1] tensors (one per row), so one batch can
serve requests with different settings. `BatchSampler` chains them in this order:

    penalties (repetition, frequency, presence) -> greedy argmax, or
    temperature -> top-k -> top-p -> min-p -> sample

which is Hugging Face's order (min-p sees the temperature-scaled distribution, as in HF and vLLM).
Sampling is inverse-CDF with one uniform number per row, so each seeded row can use its own
generator: a seeded request samples the same tokens whatever else shares its batch. When every
sampling row has a top-k, only the top-k candidates are processed (sorted once by `topk`), which
keeps the per-token cost independent of the vocabulary size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

NEG_INF = float("-inf")


# ---------------------------------------------------------------------------- processors
def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty) -> torch.Tensor:
    """CTRL / Hugging Face: for tokens already in the prompt or output (`seen`, bool [B, V]),
    positive logits are divided by `penalty` and negative ones multiplied, so penalty > 1 always
    makes a repeat less likely."""
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def apply_frequency_presence_penalties(logits: torch.Tensor, counts: torch.Tensor, frequency, presence) -> torch.Tensor:
    """OpenAI: logit[j] -= frequency * count[j] + presence * (count[j] > 0), counting output tokens."""
    counts = counts.to(logits.dtype)
    return logits - counts * frequency - (counts > 0).to(logits.dtype) * presence


def apply_temperature(logits: torch.Tensor, temperature) -> torch.Tensor:
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k) -> torch.Tensor:
    """Keep the k largest logits per row (-inf elsewhere); k is an int or a [B, 1] long tensor,
    0 meaning "off" for that row. Ties with the k-th value are kept."""
    vocab = logits.size(-1)
    if isinstance(k, int):
        if k <= 0 or k >= vocab:
            return logits
        kth = logits.topk(k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, NEG_INF)
    k = k.clamp(max=vocab)
    kmax = int(k.max())
    if kmax <= 0:
        return logits
    top = logits.topk(kmax, dim=-1).values
    kth = top.gather(-1, (k - 1).clamp(min=0))
    kth = torch.where(k > 0, kth, torch.full_like(kth, NEG_INF))
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p_filter(logits: torch.Tensor, p) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probability reaches p
    (the most likely token is always kept). p is a float or a [B, 1] tensor; 1 means "off"."""
    if isinstance(p, (int, float)):
        if p >= 1:
            return logits
        p = torch.full((logits.size(0), 1), float(p), device=logits.device, dtype=torch.float32)
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.float().softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of all strictly more likely tokens
    drop_sorted = (mass_before >= p) & (p < 1)  # p == 1: never drop (cumsum rounding could)
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, NEG_INF)


def min_p_filter(logits: torch.Tensor, min_p) -> torch.Tensor:
    """Drop tokens whose probability is below min_p times the most likely token's (float or [B, 1])."""
    if isinstance(min_p, (int, float)) and min_p <= 0:
        return logits
    probs = logits.float().softmax(dim=-1)
    threshold = probs.max(dim=-1, keepdim=True).values * min_p
    return logits.masked_fill(probs < threshold, NEG_INF)


def sample_from_probs(probs: torch.Tensor, generators: Sequence[torch.Generator | None] | None = None) -> torch.Tensor:
    """One token per row of `probs` [B, V] (need not be normalised), by inverse-CDF sampling: one
    uniform number per row (from generators[i] when given, else the global RNG) located in the
    row's cumulative distribution. Exact, and far cheaper than one random number per vocabulary
    entry (the exponential-race or torch.multinomial way). Zero-probability tokens are never drawn."""
    probs = probs.float()
    B, V = probs.shape
    cdf = probs.cumsum(dim=-1)
    if generators is None or all(g is None for g in generators):
        u = torch.rand(B, 1, device=probs.device)
    else:
        u = torch.cat([torch.rand(1, generator=g, device=probs.device) for g in generators]).view(B, 1)
    idx = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp_(max=V - 1)
    # Rounding could land on a trailing zero-probability token: take the most likely one instead.
    zero = probs.gather(1, idx) <= 0
    return torch.where(zero, probs.argmax(dim=-1, keepdim=True), idx).squeeze(1)


def top_p_sorted(sorted_logits: torch.Tensor, p) -> torch.Tensor:
    """top_p_filter for logits already sorted in descending order (no sort needed)."""
    probs = sorted_logits.float().softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    return sorted_logits.masked_fill((mass_before >= p) & (p < 1), NEG_INF)


def sample_token(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample from logits [V] or [B, V] with one setting (temperature 0 = argmax); returns [] or [B]."""
    single = logits.dim() == 1
    x = logits[None] if single else logits
    if temperature == 0:
        out = x.argmax(dim=-1)
    else:
        probs = filtered_probs(x, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
        out = sample_from_probs(probs, [generator] * x.size(0) if generator is not None else None)
    return out[0] if single else out


def filtered_probs(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                   min_p: float = 0.0) -> torch.Tensor:
    """The distribution sampling draws from: logits [B, V] through temperature -> top-k -> top-p ->
    min-p, softmaxed (float32). Speculative decoding compares two models' such distributions."""
    x = apply_temperature(logits.float(), temperature)
    return min_p_filter(top_p_filter(top_k_filter(x, top_k), top_p), min_p).softmax(dim=-1)


# ---------------------------------------------------------------------------- batched sampler
@dataclass
class SamplerRow:
    """One request's sampling settings (a subset of GenerationConfig) and its generator."""

    greedy: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    top_logprobs: int = 0
    logprobs: bool = False
    generator: torch.Generator | None = None

    @classmethod
    def from_config(cls, config, device) -> "SamplerRow":
        generator = None
        if config.seed is not None and not config.greedy:
            generator = torch.Generator(device=device)
            generator.manual_seed(config.seed)
        return cls(
            greedy=config.greedy, temperature=config.temperature, top_k=config.top_k, top_p=config.top_p,
            min_p=config.min_p, repetition_penalty=config.repetition_penalty,
            frequency_penalty=config.frequency_penalty, presence_penalty=config.presence_penalty,
            top_logprobs=config.top_logprobs, logprobs=config.logprobs, generator=generator,
        )


@dataclass
class SampleOutput:
    tokens: torch.Tensor  # [B] long
    logprobs: torch.Tensor | None = None  # [B] log p(token) under the raw model distribution
    top_ids: torch.Tensor | None = None  # [B, n] most likely alternatives
    top_logprobs: torch.Tensor | None = None  # [B, n]


class BatchSampler:
    """Samples the next token for every row of a batch, each row with its own settings.

    Row state (token counts for the penalties) lives here too; `select` and `concat` follow the
    engine when rows leave or join a running batch. Settings no row uses cost nothing: the flags
    computed at construction skip their processors entirely.
    """

    def __init__(self, rows: list[SamplerRow], vocab_size: int, device, prompts: list[list[int]] | None = None):
        self.rows = rows
        self.vocab_size = vocab_size
        self.device = torch.device(device)
        B = len(rows)

        def col(values, dtype=torch.float32):
            return torch.tensor(values, dtype=dtype, device=self.device).view(B, 1)

        self.all_greedy = all(r.greedy for r in rows)
        self.any_greedy = any(r.greedy for r in rows)
        self.greedy_rows = torch.tensor([r.greedy for r in rows], device=self.device)
        self.temperature = col([r.temperature if not r.greedy else 1.0 for r in rows])
        self.use_temperature = any(not r.greedy and r.temperature != 1.0 for r in rows)
        # A greedy row is a top-1 row, so greedy and top-k rows share the candidate path.
        ks = [1 if r.greedy else min(r.top_k, vocab_size) for r in rows]
        self.top_k = col(ks, torch.long)
        self.k_max = max(ks) if ks and all(k > 0 for k in ks) else 0
        self.use_top_k = any(not r.greedy and r.top_k > 0 for r in rows)
        self.mixed_k = len(set(ks)) > 1
        self._rank = torch.arange(self.k_max, device=self.device)[None] if self.k_max else None
        self.top_p = col([r.top_p for r in rows])
        self.use_top_p = any(not r.greedy and r.top_p < 1.0 for r in rows)
        self.min_p = col([r.min_p for r in rows])
        self.use_min_p = any(not r.greedy and r.min_p > 0 for r in rows)
        self.repetition = col([r.repetition_penalty for r in rows])
        self.use_repetition = any(r.repetition_penalty != 1.0 for r in rows)
        self.frequency = col([r.frequency_penalty for r in rows])
        self.presence = col([r.presence_penalty for r in rows])
        self.use_counts = any(r.frequency_penalty != 0 or r.presence_penalty != 0 for r in rows)
        self.want_logprobs = any(r.logprobs for r in rows)
        self.n_top = max((r.top_logprobs for r in rows), default=0)
        self.generators = [r.generator for r in rows]
        self.seeded = any(g is not None for g in self.generators)

        # Penalty state: `seen` covers prompt + output (repetition), `counts` output only (OpenAI).
        self.seen = self.counts = None
        if self.use_repetition:
            self.seen = torch.zeros(B, vocab_size, dtype=torch.bool, device=self.device)
            for i, ids in enumerate(prompts or []):
                if ids:
                    self.seen[i, torch.tensor(ids, device=self.device).clamp(max=vocab_size - 1)] = True
        if self.use_counts:
            self.counts = torch.zeros(B, vocab_size, dtype=torch.int32, device=self.device)

    def __len__(self) -> int:
        return len(self.rows)

    @torch.inference_mode()
    def __call__(self, logits: torch.Tensor, suppress: dict[int, Sequence[int]] | None = None) -> SampleOutput:
        """logits [B, V] -> next tokens. `suppress` maps row -> token ids that must not be drawn
        now (stop tokens before min_new_tokens)."""
        logits = logits.float()
        out = SampleOutput(tokens=None)
        if self.want_logprobs:
            raw = logits.log_softmax(dim=-1)
        if suppress:
            logits = logits.clone()
            for row, ids in suppress.items():
                logits[row, list(ids)] = NEG_INF
        if self.use_repetition:
            logits = apply_repetition_penalty(logits, self.seen, self.repetition)
        if self.use_counts:
            logits = apply_frequency_presence_penalties(logits, self.counts, self.frequency, self.presence)

        if self.all_greedy:
            tokens = logits.argmax(dim=-1)
        else:
            x = apply_temperature(logits, self.temperature) if self.use_temperature else logits
            generators = self.generators if self.seeded else None
            if self.k_max:
                # Candidates only: the k_max most likely tokens, already sorted, so top-p needs no sort.
                values, candidates = x.topk(self.k_max, dim=-1)
                if self.mixed_k:
                    values = values.masked_fill(self._rank >= self.top_k, NEG_INF)
                if self.use_top_p:
                    values = top_p_sorted(values, self.top_p)
                if self.use_min_p:
                    values = min_p_filter(values, self.min_p)
                # Back to vocabulary order, so the inverse CDF (and hence a seeded sample) is the same
                # as on the full-vocabulary path below.
                candidates, order = candidates.sort(dim=-1)
                values = values.gather(1, order)
                tokens = candidates.gather(1, sample_from_probs(values.softmax(dim=-1), generators)[:, None]).squeeze(1)
            else:
                if self.use_top_k:
                    x = top_k_filter(x, self.top_k)
                if self.use_top_p:
                    x = top_p_filter(x, self.top_p)
                if self.use_min_p:
                    x = min_p_filter(x, self.min_p)
                tokens = sample_from_probs(x.softmax(dim=-1), generators)
                if self.any_greedy:
                    tokens = torch.where(self.greedy_rows, logits.argmax(dim=-1), tokens)

        self.observe(tokens)
        out.tokens = tokens
        if self.want_logprobs:
            out.logprobs = raw.gather(-1, tokens[:, None]).squeeze(-1)
            if self.n_top:
                out.top_logprobs, out.top_ids = raw.topk(self.n_top, dim=-1)
        return out

    def observe(self, tokens: torch.Tensor) -> None:
        """Record the chosen tokens in the penalty state."""
        if self.seen is not None:
            self.seen.scatter_(1, tokens[:, None], True)
        if self.counts is not None:
            self.counts.scatter_add_(1, tokens[:, None], torch.ones_like(tokens[:, None], dtype=torch.int32))

    # ------------------------------------------------------------------ batch membership
    def select(self, keep: list[int]) -> "BatchSampler":
        """The sampler for rows `keep` (in that order), with their penalty state."""
        new = BatchSampler([self.rows[i] for i in keep], self.vocab_size, self.device)
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        if new.seen is not None:
            new.seen = self.seen.index_select(0, idx)
        if new.counts is not None:
            new.counts = self.counts.index_select(0, idx)
        return new

    @staticmethod
    def concat(a: "BatchSampler", b: "BatchSampler") -> "BatchSampler":
        new = BatchSampler(a.rows + b.rows, a.vocab_size, a.device)
        if new.seen is not None:
            new.seen = torch.cat([_state(a, "seen"), _state(b, "seen")])
        if new.counts is not None:
            new.counts = torch.cat([_state(a, "counts"), _state(b, "counts")])
        return new


def _state(s: BatchSampler, name: str) -> torch.Tensor:
    value = getattr(s, name)
    if value is not None:
        return value
    dtype = torch.bool if name == "seen" else torch.int32
    return torch.zeros(len(s), s.vocab_size, dtype=dtype, device=s.device)
