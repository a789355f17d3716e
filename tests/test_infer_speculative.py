"""Speculative decoding (llmlab.infer.speculative): exact in distribution, identical when greedy."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from llmlab.config import ModelConfig
from llmlab.errors import ConfigError
from llmlab.infer import Engine
from llmlab.infer import speculative as S
from llmlab.infer.sampling import filtered_probs, sample_from_probs
from llmlab.infer.speculative import SpeculativeDecoder
from llmlab.model import TransformerLM

V = 5  # a vocabulary small enough to enumerate every 3-token continuation


def tiny(seed: int, *, vocab=V, n_layer=1, d_model=16, init_std=0.6) -> TransformerLM:
    """A random model with peaked distributions (large init), so target and draft differ clearly."""
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=vocab, context_length=32, n_layer=n_layer, n_head=2, n_kv_head=2,
                         d_model=d_model, d_ff=32, init_std=init_std)
    return TransformerLM(config).eval()


SAMPLING = dict(temperature=0.9, top_k=4)


def exact_distribution(model, prompt, n):
    """{continuation: probability} for all V**n continuations, under the processed distribution."""
    out = {}
    with torch.inference_mode():
        for cont in itertools.product(range(V), repeat=n):
            p = 1.0
            for i in range(n):
                logits = model(torch.tensor([prompt + list(cont[:i])])).logits[0, -1:]
                p *= float(filtered_probs(logits, **SAMPLING)[0, cont[i]])
            out[cont] = p
    return out


def chi_square_p(counts, probs, n):
    """p-value of Pearson's chi-square test, cells with expected count < 5 pooled into one."""
    stat, df, pooled_obs, pooled_exp = 0.0, -1, 0, 0.0
    for cell, p in probs.items():
        exp = n * p
        if exp < 5:
            pooled_obs, pooled_exp = pooled_obs + counts.get(cell, 0), pooled_exp + exp
            continue
        stat += (counts.get(cell, 0) - exp) ** 2 / exp
        df += 1
    if pooled_exp > 0:
        stat += (pooled_obs - pooled_exp) ** 2 / pooled_exp
        df += 1
    return float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64), torch.tensor(stat / 2, dtype=torch.float64)))


def sample_counts(decoder, prompt, n_new, n):
    gen = torch.Generator().manual_seed(0)
    counts: dict[tuple, int] = {}
    for _ in range(n):
        result, _ = decoder.generate(prompt, max_new_tokens=n_new, ignore_eos=True, generator=gen, **SAMPLING)
        key = tuple(result.token_ids)
        counts[key] = counts.get(key, 0) + 1
    return counts


def naive_verify(p, q, drafts, greedy, generator):
    """Accept every draft token: outputs then follow the draft's distribution, not the target's."""
    k = len(drafts)
    return k, int(sample_from_probs(p[k:k + 1], [generator])[0])


@pytest.mark.slow
def test_output_distribution_equals_the_targets(monkeypatch, torch_threads):
    target, draft = tiny(0), tiny(1)
    prompt, n_new, n = [0, 1], 3, 3000
    exact = exact_distribution(target, prompt, n_new)
    assert abs(sum(exact.values()) - 1) < 1e-5
    decoder = SpeculativeDecoder(target, draft, num_draft_tokens=2)  # 2 drafts + bonus: every path is used
    counts = sample_counts(decoder, prompt, n_new, n)
    assert chi_square_p(counts, exact, n) > 1e-3
    # The same test rejects a decoder that accepts every draft token.
    monkeypatch.setattr(S, "verify", naive_verify)
    assert chi_square_p(sample_counts(decoder, prompt, n_new, n), exact, n) < 1e-3


def test_greedy_output_is_plain_greedy(torch_threads):
    target, draft = tiny(0, vocab=50, n_layer=2, d_model=32, init_std=0.2), tiny(3, vocab=50, init_std=0.2)
    engine = Engine(target)
    for k in (1, 3, 5):
        decoder = SpeculativeDecoder(target, draft, num_draft_tokens=k)
        for prompt in ([1, 2, 3], [7], list(range(10, 22))):
            plain = engine.generate(prompt, temperature=0, max_new_tokens=15, ignore_eos=True)
            spec, stats = decoder.generate(prompt, temperature=0, max_new_tokens=15, ignore_eos=True)
            assert spec.token_ids == plain.token_ids
            assert spec.finish_reason == plain.finish_reason == "length"
            assert stats.tokens == 15 and 0 <= stats.accepted <= stats.proposed


def test_a_draft_equal_to_the_target_is_always_accepted(torch_threads):
    model = tiny(0, vocab=50, init_std=0.2)
    decoder = SpeculativeDecoder(model, model, num_draft_tokens=3)
    result, stats = decoder.generate([1, 2], temperature=0, max_new_tokens=12, ignore_eos=True)
    assert stats.acceptance_rate == 1.0 and stats.tokens_per_target_forward == 4.0
    assert result.token_ids == Engine(model).generate([1, 2], temperature=0, max_new_tokens=12, ignore_eos=True).token_ids


def test_context_end_and_unsupported_settings(torch_threads):
    target, draft = tiny(0, vocab=50, init_std=0.2), tiny(1, vocab=50, init_std=0.2)
    decoder = SpeculativeDecoder(target, draft, num_draft_tokens=4)
    result, _ = decoder.generate(list(range(1, 29)), temperature=0, max_new_tokens=50, ignore_eos=True)
    assert len(result.token_ids) == 4 and result.finish_reason == "length"  # 28 + 4 = the context of 32
    with pytest.raises(ConfigError, match="does not support repetition_penalty"):
        decoder.generate([1], repetition_penalty=1.2)
    with pytest.raises(ConfigError, match="vocabulary"):
        SpeculativeDecoder(target, tiny(0, vocab=60))


def test_generate_draft_model_cli(tmp_path, small_tokenizer, capsys, torch_threads):
    from llmlab.checkpoint import save_checkpoint
    from llmlab.cli.main import main
    from llmlab.config import preset
    from llmlab.tokenizer import Tokenizer

    vocab = small_tokenizer.vocab_size
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "target", TransformerLM(preset("tiny", vocab_size=vocab)), small_tokenizer)
    torch.manual_seed(1)
    small = preset("tiny", vocab_size=vocab, n_layer=1, d_model=64, d_ff=128)
    save_checkpoint(tmp_path / "draft", TransformerLM(small), small_tokenizer)
    args = ["generate", "--model", str(tmp_path / "target"), "--prompt", "Mia has", "--temperature", "0",
            "--max-new-tokens", "10", "--ignore-eos", "--json"]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(args + ["--draft-model", str(tmp_path / "draft"), "--draft-tokens", "3"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["token_ids"] == plain["token_ids"] and spec["text"] == plain["text"]
    assert set(spec["speculative"]) >= {"acceptance_rate", "tokens_per_target_forward"}

    other = Tokenizer.train(["completely different text, other merges"] * 20, vocab_size=vocab, show_progress=False)
    save_checkpoint(tmp_path / "other", TransformerLM(small), other)
    assert main(args + ["--draft-model", str(tmp_path / "other")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tokenizer differs" in err[0]
