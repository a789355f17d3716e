"""The engine: KV cache, batching, continuous batching, seeds, limits, on random-weight models.

Equality tests run in float64, so that the different (but mathematically equal) reduction orders
of cached/uncached and batched/single attention cannot flip a near-tie argmax. Weights are drawn
with a large std (0.2, not GPT-2's 0.02): a default-initialised random model just repeats one
token whatever its context, which would let attention bugs pass unnoticed.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from llmlab.config import ModelConfig
from llmlab.errors import ConfigError
from llmlab.infer import Engine, GenerationConfig, generate_text
from llmlab.model import TransformerLM

PROMPTS = [
    "Once upon a time",
    "Tom lives in Pinebrook. He works as a baker",
    "Rex",
    "The shop was clean and the bread was fresh. I liked it a lot! Sam has 3 apples.",
    "Zoë ate crème brûlée",
]


def make_model(vocab_size: int, seed: int = 0, **overrides) -> TransformerLM:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=vocab_size, context_length=128, n_layer=2, n_head=4, n_kv_head=2, d_model=64, init_std=0.2)
    cfg.update(overrides)
    return TransformerLM(ModelConfig(**cfg)).double().eval()


@pytest.fixture
def model(small_tokenizer, torch_threads):
    return make_model(small_tokenizer.vocab_size)


def naive_greedy(model, ids: list[int], n: int) -> list[int]:
    """Greedy decoding the slow way: the whole sequence through the model for every token."""
    ids, out = list(ids), []
    with torch.no_grad():
        for _ in range(n):
            t = int(model(torch.tensor([ids])).logits[0, -1].argmax())
            out.append(t)
            ids.append(t)
    return out


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_greedy_with_kv_cache_equals_greedy_without(small_tokenizer, torch_threads, family):
    extra = {} if family == "llama" else dict(position="learned", norm="layernorm", mlp="gelu",
                                              attention_bias=True, mlp_bias=True, n_kv_head=4)
    model = make_model(small_tokenizer.vocab_size, **extra)
    engine = Engine(model, small_tokenizer)
    results = engine.generate(PROMPTS, temperature=0, max_new_tokens=24, ignore_eos=True)
    for prompt, result in zip(PROMPTS, results):
        assert result.token_ids == naive_greedy(model, small_tokenizer.encode(prompt), 24), prompt
        assert result.finish_reason == "length"


def test_batched_output_equals_one_at_a_time(model, small_tokenizer):
    engine = Engine(model, small_tokenizer)
    settings = dict(temperature=0, max_new_tokens=20, ignore_eos=True)
    batched = [r.token_ids for r in engine.generate(PROMPTS, **settings)]
    alone = [engine.generate(p, **settings).token_ids for p in PROMPTS]
    assert batched == alone
    # A different order and different batch mates change nothing either.
    assert [r.token_ids for r in engine.generate(PROMPTS[::-1][:3], **settings)] == alone[::-1][:3]


def test_continuous_batching_requests_join_and_leave_a_running_batch(model, small_tokenizer):
    """Requests added mid-flight, different budgets (rows leave at different steps), a batch limit
    (requests wait for a free row): every output equals the one-at-a-time output."""
    engine = Engine(model, small_tokenizer, max_batch_size=3)
    budgets = [30, 5, 17, 9, 25]
    expected = {p: naive_greedy(model, small_tokenizer.encode(p), n) for p, n in zip(PROMPTS, budgets)}
    ids = {}
    for p, n in zip(PROMPTS[:2], budgets[:2]):
        ids[engine.add_request(p, temperature=0, max_new_tokens=n, ignore_eos=True)] = p
    results, steps, max_running = {}, 0, 0
    while engine.has_unfinished():
        steps += 1
        if steps == 4:  # join a running batch whose write pointer is ahead of / behind the new prompts
            for p, n in zip(PROMPTS[2:], budgets[2:]):
                ids[engine.add_request(p, temperature=0, max_new_tokens=n, ignore_eos=True)] = p
        for out in engine.step():
            if out.finished:
                results[ids[out.request_id]] = out.result.token_ids
        max_running = max(max_running, engine.num_running)
    assert max_running == 3
    assert results == expected


def test_rows_reaching_the_context_end_stop_and_the_cache_compacts(small_tokenizer, torch_threads):
    model = make_model(small_tokenizer.vocab_size, context_length=40)
    engine = Engine(model, small_tokenizer, max_batch_size=2)
    long = list(range(10, 40))
    short = small_tokenizer.encode(PROMPTS[0])
    # The long prompt fills the context after 10 tokens; the short one keeps going in a cache whose
    # columns then get compacted (its left padding dropped) rather than overflowing.
    results = engine.generate([long, short], temperature=0, max_new_tokens=30, ignore_eos=True)
    assert results[0].finish_reason == "length" and len(results[0].token_ids) == 40 - 30
    assert results[1].token_ids == naive_greedy(model, short, 30)


def test_fixed_seed_reproduces_samples_whatever_the_batch(model, small_tokenizer):
    engine = Engine(model, small_tokenizer)
    settings = dict(temperature=1.0, top_k=50, max_new_tokens=20, ignore_eos=True)
    a = engine.generate(PROMPTS[0], seed=7, **settings).token_ids
    b = engine.generate(PROMPTS[0], seed=7, **settings).token_ids
    c = engine.generate(PROMPTS[0], seed=8, **settings).token_ids
    assert a == b and a != c
    # In a batch, next to unseeded and differently seeded requests, the seeded row is unchanged.
    # Mates with other top-k settings move the batch to other sampling paths; still the same tokens.
    for other in (dict(top_k=0), dict(top_k=200, top_p=0.9)):
        mates = [engine.add_request(PROMPTS[1], **dict(settings, **other)),
                 engine.add_request(PROMPTS[0], seed=7, **settings),
                 engine.add_request(PROMPTS[2], seed=3, **settings)]
        assert engine.wait(mates)[mates[1]].token_ids == a


def test_global_seed_reproduces_unseeded_sampling(model, small_tokenizer):
    torch.manual_seed(123)
    a = generate_text(model, small_tokenizer, PROMPTS[1], max_new_tokens=15, temperature=1.0, ignore_eos=True)
    torch.manual_seed(123)
    b = generate_text(model, small_tokenizer, PROMPTS[1], max_new_tokens=15, temperature=1.0, ignore_eos=True)
    assert a == b


def test_stop_token_ids_and_checkpoint_eos(model, small_tokenizer):
    engine = Engine(model, small_tokenizer)
    free = engine.generate(PROMPTS[1], temperature=0, max_new_tokens=12, ignore_eos=True).token_ids
    stop = free[4]
    first = free.index(stop)
    out = engine.generate(PROMPTS[1], temperature=0, max_new_tokens=12, stop_token_ids=[stop])
    assert out.token_ids == free[:first + 1] and out.finish_reason == "stop" and out.stop_reason == stop
    assert out.text == small_tokenizer.decode(free[:first], skip_special_tokens=True)  # the stop token is not text
    # The checkpoint's generation_config supplies end-of-text ids.
    model.generation_config = {"eos_token_id": [stop], "pad_token_id": 1}
    out = Engine(model, small_tokenizer).generate(PROMPTS[1], temperature=0, max_new_tokens=12)
    assert out.finish_reason == "stop" and out.token_ids[-1] == stop
    # min_new_tokens suppresses stop tokens until reached.
    out = Engine(model, small_tokenizer).generate(PROMPTS[1], temperature=0, max_new_tokens=12, min_new_tokens=first + 3)
    assert stop not in out.token_ids[:first + 3] and len(out.token_ids) >= first + 3


def test_prompt_longer_than_the_context_is_rejected_or_truncated_by_option(small_tokenizer, torch_threads):
    model = make_model(small_tokenizer.vocab_size, context_length=32)
    engine = Engine(model, small_tokenizer)
    prompt = list(range(10, 50))  # 40 tokens
    with pytest.raises(ConfigError, match="context is 32.*truncation='left'"):
        engine.generate(prompt, max_new_tokens=4)
    with pytest.warns(UserWarning, match="truncated from the left"):
        out = engine.generate(prompt, max_new_tokens=4, truncation="left", temperature=0, ignore_eos=True)
    assert out.prompt_truncated == 40 - 28 and out.prompt_token_ids == prompt[-28:]
    assert out.token_ids == naive_greedy(model, prompt[-28:], 4)
    # Prompt + max_new_tokens over the context: generation stops at the context's end.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = engine.generate(prompt[:29], max_new_tokens=10, temperature=0, ignore_eos=True)
    assert len(out.token_ids) == 3 and out.finish_reason == "length"


def test_max_length_counts_the_prompt(model, small_tokenizer):
    n = len(small_tokenizer.encode(PROMPTS[1]))
    out = Engine(model, small_tokenizer).generate(PROMPTS[1], max_length=n + 5, temperature=0, ignore_eos=True)
    assert len(out.token_ids) == 5


def test_generate_text_returns_only_the_continuation(model, small_tokenizer):
    settings = dict(max_new_tokens=10, temperature=0, ignore_eos=True)
    ids = Engine(model, small_tokenizer).generate(PROMPTS[0], **settings).token_ids
    text = generate_text(model, small_tokenizer, PROMPTS[0], **settings)
    assert text == small_tokenizer.decode(ids, skip_special_tokens=True)
    assert generate_text(model, small_tokenizer, PROMPTS[:2], **settings)[0] == text


def test_logprobs_match_the_model(model, small_tokenizer):
    ids = small_tokenizer.encode(PROMPTS[2])
    out = Engine(model, small_tokenizer).generate(ids, temperature=0, max_new_tokens=3, ignore_eos=True,
                                                  top_logprobs=2)
    with torch.no_grad():
        logp = model(torch.tensor([ids + out.token_ids])).logits[0].log_softmax(-1)
    for i, (t, lp) in enumerate(zip(out.token_ids, out.logprobs)):
        assert lp == pytest.approx(logp[len(ids) - 1 + i, t].item(), abs=1e-6)
        assert list(out.top_logprobs[i])[0] == t  # greedy: the chosen token is the most likely


def test_abort_finishes_a_request_early(model, small_tokenizer):
    engine = Engine(model, small_tokenizer)
    rid = engine.add_request(PROMPTS[0], max_new_tokens=50, ignore_eos=True)
    keep = engine.add_request(PROMPTS[1], max_new_tokens=6, ignore_eos=True)
    engine.step()
    engine.step()
    engine.abort(rid)
    done = engine.wait([rid, keep])
    assert done[rid].finish_reason == "abort" and len(done[rid].token_ids) == 2
    assert len(done[keep].token_ids) == 6
    assert not engine.has_unfinished()


def test_stream_returns_its_result_explicitly_and_frees_the_row_when_dropped(model, small_tokenizer):
    engine = Engine(model, small_tokenizer)
    want = engine.generate(PROMPTS[1], temperature=0, max_new_tokens=8, ignore_eos=True)
    stream = engine.stream(PROMPTS[1], temperature=0, max_new_tokens=8, ignore_eos=True)
    assert stream.result is None and not engine.has_unfinished()  # queued when iteration starts
    pieces = list(stream)
    assert "".join(pieces) == stream.result.text == want.text
    assert stream.result.token_ids == want.token_ids and stream.result.finish_reason == "length"
    assert list(stream) == [] and stream.result.token_ids == want.token_ids  # exhausted; the result stays

    def relay():  # a wrapping generator gets the result as the value of `yield from`
        return (yield from engine.stream(PROMPTS[1], temperature=0, max_new_tokens=8, ignore_eos=True))

    wrapper = relay()
    with pytest.raises(StopIteration) as stop:
        while True:
            next(wrapper)
    assert stop.value.value.token_ids == want.token_ids

    early = engine.stream(PROMPTS[0], max_new_tokens=50, ignore_eos=True)
    next(early)
    assert engine.has_unfinished()
    early.close()  # the consumer stops early: the request is aborted and its row freed
    assert early.result is None and not engine.has_unfinished()
    assert engine.generate(PROMPTS[1], temperature=0, max_new_tokens=8, ignore_eos=True).token_ids == want.token_ids


def test_engine_rejects_bad_input(model, small_tokenizer):
    engine = Engine(model, small_tokenizer)
    with pytest.raises(ConfigError, match="outside the model's vocabulary"):
        engine.generate([0, 10**6])
    with pytest.raises(ConfigError, match="prompt is empty"):
        engine.generate("")
    with pytest.raises(ConfigError, match="top_p"):
        engine.generate("hi", top_p=2)
    with pytest.raises(ConfigError, match="did you mean 'max_new_tokens'"):
        generate_text(model, small_tokenizer, "hi", max_new_token=3)
    with pytest.raises(ConfigError, match="max_batch_size"):
        Engine(model, small_tokenizer, max_batch_size=0)


def test_per_request_settings_in_one_batch(model, small_tokenizer):
    """Greedy, sampled and penalised requests share a batch without affecting each other."""
    engine = Engine(model, small_tokenizer)
    greedy = GenerationConfig(temperature=0, max_new_tokens=12, ignore_eos=True)
    alone = engine.generate(PROMPTS[0], greedy).token_ids
    rids = [engine.add_request(PROMPTS[0], greedy),
            engine.add_request(PROMPTS[1], temperature=1.3, top_p=0.9, min_p=0.05, max_new_tokens=12),
            engine.add_request(PROMPTS[2], temperature=0, repetition_penalty=5.0, max_new_tokens=12, ignore_eos=True)]
    done = engine.wait(rids)
    assert done[rids[0]].token_ids == alone
    penalised = done[rids[2]].token_ids
    assert len(set(penalised)) == len(penalised)  # a strong repetition penalty: no token twice


def test_checkpoint_generation_config_supplies_defaults(model, small_tokenizer):
    model.generation_config = {"temperature": 0.0, "max_new_tokens": 7, "max_length": 4096,
                               "transformers_version": "5.0", "pad_token_id": None}
    engine = Engine(model, small_tokenizer)
    out = engine.generate("Rex", ignore_eos=True)
    assert out.token_ids == naive_greedy(model, small_tokenizer.encode("Rex"), 7)  # greedy, 7 tokens
    assert len(engine.generate("Rex", max_new_tokens=3, ignore_eos=True).token_ids) == 3  # the caller wins
    model.generation_config = {"top_p": 5}
    with pytest.raises(ConfigError, match="generation_config.json.*top_p"):
        Engine(model, small_tokenizer)
