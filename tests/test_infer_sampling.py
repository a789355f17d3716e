"""Logits processors, samplers and generation parameters, on hand-made logits."""

from __future__ import annotations

import math

import pytest
import torch

from llmlab.errors import ConfigError
from llmlab.infer import GenerationConfig, sample_token
from llmlab.infer.sampling import (
    BatchSampler,
    SamplerRow,
    apply_frequency_presence_penalties,
    apply_repetition_penalty,
    min_p_filter,
    sample_from_probs,
    top_k_filter,
    top_p_filter,
)

# probabilities 0.40, 0.25, 0.15, 0.10, 0.05, 0.03, 0.02 (token 6 .. 0 in a shuffled order)
PROBS = torch.tensor([0.02, 0.25, 0.05, 0.40, 0.10, 0.03, 0.15])
LOGITS = PROBS.log()
DRAWS = 4000


def draws(**kwargs) -> set[int]:
    gen = torch.Generator().manual_seed(0)
    logits = LOGITS.expand(DRAWS, -1).clone()
    return set(sample_token(logits, generator=gen, **kwargs).tolist())


def test_top_k_never_samples_outside_the_k_most_likely():
    assert draws(top_k=1) == {3}
    assert draws(top_k=3) == {3, 1, 6}


def test_top_p_keeps_the_smallest_set_reaching_p():
    # 0.40 + 0.25 = 0.65 < 0.7, so the nucleus for 0.7 needs the third token (0.15) too.
    assert draws(top_p=0.7) == {3, 1, 6}
    assert draws(top_p=0.6) == {3, 1}
    assert draws(top_p=0.1) == {3}  # the most likely token is always kept


def test_min_p_drops_tokens_below_a_fraction_of_the_top():
    # threshold 0.3 * 0.40 = 0.12: keeps 0.40, 0.25, 0.15
    assert draws(min_p=0.3) == {3, 1, 6}
    assert draws(min_p=1.0) == {3}


def test_without_filters_every_token_is_reachable_at_about_its_probability():
    gen = torch.Generator().manual_seed(1)
    out = sample_token(LOGITS.expand(20000, -1).clone(), generator=gen)
    freq = torch.bincount(out, minlength=7).float() / 20000
    assert torch.allclose(freq, PROBS, atol=0.015)


def test_temperature_sharpens_and_zero_is_argmax():
    assert draws(temperature=0) == {3}
    gen = torch.Generator().manual_seed(0)
    cold = sample_token(LOGITS.expand(DRAWS, -1).clone(), temperature=0.25, generator=gen)
    assert (cold == 3).float().mean() > 0.8  # 0.4^4 / sum p^4 ~ 0.85


def test_filters_on_per_row_settings():
    logits = LOGITS.expand(3, -1).clone()
    k = torch.tensor([[1], [0], [2]])
    out = top_k_filter(logits, k)
    assert torch.isfinite(out[0]).sum() == 1 and torch.isfinite(out[1]).all() and torch.isfinite(out[2]).sum() == 2
    p = torch.tensor([[0.5], [1.0], [0.7]])
    out = top_p_filter(logits, p)
    assert torch.isfinite(out).sum(-1).tolist() == [2, 7, 3]
    out = min_p_filter(logits, torch.tensor([[0.0], [0.3], [1.0]]))
    assert torch.isfinite(out).sum(-1).tolist() == [7, 3, 1]


def test_zero_probability_tokens_are_never_drawn():
    probs = torch.tensor([[0.0, 1e-6, 0.0, 1.0]]).expand(5000, -1).contiguous()
    out = sample_from_probs(probs)
    assert set(out.tolist()) <= {1, 3}


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    logits = torch.tensor([[2.0, -2.0, 1.0, -1.0]])
    seen = torch.tensor([[True, True, False, False]])
    out = apply_repetition_penalty(logits, seen, 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0, -1.0]]  # seen tokens both get less likely; unseen untouched


def test_frequency_and_presence_penalties_follow_openai():
    logits = torch.zeros(1, 4)
    counts = torch.tensor([[0, 1, 3, 0]])
    out = apply_frequency_presence_penalties(logits, counts, 0.5, 1.0)
    assert out.tolist() == [[0.0, -1.5, -2.5, 0.0]]  # -(0.5 * count) - 1.0 * (count > 0)


def test_batch_sampler_penalties_track_prompt_and_output():
    rows = [SamplerRow(greedy=True, repetition_penalty=10.0), SamplerRow(greedy=True, frequency_penalty=2.0)]
    sampler = BatchSampler(rows, vocab_size=4, device="cpu", prompts=[[0], [0]])
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0], [3.0, 2.0, 1.0, 0.0]])
    # row 0: token 0 is in its prompt, so 3/10 = 0.3 loses to 2; row 1 penalises output only.
    assert sampler(logits).tokens.tolist() == [1, 0]
    # now row 0 has seen 0 and 1 (-> 0.3, 0.2): 1.0 wins; row 1 has produced 0 once (3 - 2 = 1 < 2).
    assert sampler(logits).tokens.tolist() == [2, 1]


def test_batch_sampler_mixes_greedy_and_seeded_rows():
    rows = [SamplerRow(greedy=True), SamplerRow(greedy=False, generator=torch.Generator().manual_seed(5))]
    sampler = BatchSampler(rows, vocab_size=7, device="cpu")
    first = [sampler(LOGITS[None].expand(2, -1).clone()).tokens.tolist() for _ in range(30)]
    assert all(t[0] == 3 for t in first)
    again = BatchSampler([SamplerRow(greedy=False, generator=torch.Generator().manual_seed(5))], 7, "cpu")
    assert [again(LOGITS[None].clone()).tokens.item() for _ in range(30)] == [t[1] for t in first]


@pytest.mark.parametrize("full_vocabulary_path", [False, True])
def test_batch_sampler_never_samples_outside_each_rows_set(full_vocabulary_path):
    rows = [SamplerRow(greedy=False, top_k=3), SamplerRow(greedy=False, top_k=5, top_p=0.6),
            SamplerRow(greedy=False, top_k=7, min_p=0.3), SamplerRow(greedy=True)]
    if full_vocabulary_path:  # a row without top-k sends the whole batch down the other path
        rows.append(SamplerRow(greedy=False))
    sampler = BatchSampler(rows, vocab_size=7, device="cpu")
    torch.manual_seed(0)
    seen = [set() for _ in rows]
    for _ in range(600):
        for i, t in enumerate(sampler(LOGITS[None].expand(len(rows), -1).clone()).tokens.tolist()):
            seen[i].add(t)
    assert seen[:4] == [{3, 1, 6}, {3, 1}, {3, 1, 6}, {3}]


def test_logprobs_are_those_of_the_raw_distribution():
    rows = [SamplerRow(greedy=True, logprobs=True, top_logprobs=2)]
    out = BatchSampler(rows, 7, "cpu")(LOGITS[None].clone())
    assert out.tokens.item() == 3
    assert math.isclose(out.logprobs.item(), math.log(0.40), rel_tol=1e-5)
    assert out.top_ids.tolist() == [[3, 1]]


# ---------------------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=-0.1), "temperature must be >= 0"),
        (dict(temperature=float("nan")), "temperature must be a finite number"),
        (dict(top_p=0.0), "top_p must be in (0, 1]"),
        (dict(top_p=1.5), "top_p must be in (0, 1]"),
        (dict(top_k=-1), "top_k must be >= 0"),
        (dict(min_p=1.2), "min_p must be in [0, 1]"),
        (dict(repetition_penalty=0), "repetition_penalty must be > 0"),
        (dict(frequency_penalty=3), "frequency_penalty must be in [-2, 2]"),
        (dict(max_new_tokens=0), "max_new_tokens must be >= 1"),
        (dict(max_new_tokens=5, max_length=10), "not both"),
        (dict(max_new_tokens=5, min_new_tokens=6), "min_new_tokens (6) exceeds"),
        (dict(stop=[""]), "stop must be non-empty strings"),
        (dict(stop_token_ids=[-3]), "stop_token_ids must be non-negative"),
        (dict(do_sample=True, temperature=0), "do_sample=True needs temperature > 0"),
        (dict(top_logprobs=50), "top_logprobs must be <= 20"),
        (dict(truncation="right"), "truncation must be one of"),
        (dict(seed=1.5), "seed must be an integer"),
    ],
)
def test_bad_parameters_are_rejected_with_a_clear_message(kwargs, message):
    with pytest.raises(ConfigError, match="invalid generation parameter") as info:
        GenerationConfig(**kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_parameter_names_suggest_the_right_one():
    with pytest.raises(ConfigError, match="did you mean 'temperature'"):
        GenerationConfig().replace(temprature=0.5)


def test_config_conventions():
    assert GenerationConfig(temperature=0).greedy and GenerationConfig(do_sample=False).greedy
    assert not GenerationConfig().greedy
    assert GenerationConfig(stop="\n").stop == ["\n"]
    # A caller's max_new_tokens replaces a default max_length (and the reverse).
    assert GenerationConfig(max_length=50).replace(max_new_tokens=5).max_length is None
    assert GenerationConfig(max_length=50).budget(20) == 30
    with pytest.raises(ConfigError, match="max_length counts the prompt too"):
        GenerationConfig(max_length=10).budget(12)
    cfg = GenerationConfig(eos_token_id=[7, 9], stop_token_ids=[4])
    assert cfg.stop_token_set() == {4, 7, 9}
    assert cfg.replace(ignore_eos=True).stop_token_set() == {4}
