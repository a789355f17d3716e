"""`llmlab serve` through the official `openai` client: both endpoints, streaming and not, n > 1, stop,
seed, logprobs (checked against the model's own distribution), usage, the extra sampling fields, and
greedy output equal to `llmlab generate --temperature 0`."""

from __future__ import annotations

import json

import pytest
from serve_helpers import http, metric, openai_client, running_server

pytest.importorskip("openai")
pytest.importorskip("fastapi")

PROMPT = "Once upon a time, Mia had a small dog"
MESSAGES = [{"role": "system", "content": "You are kind."}, {"role": "user", "content": "Who is Rex?"}]
NAME = "test-model"


@pytest.fixture(scope="module")
def served(serve_checkpoint):
    from llmlab.checkpoint import load
    from llmlab.serve import ServeConfig, create_app

    model, tokenizer = load(serve_checkpoint)
    app = create_app(model, tokenizer, ServeConfig(model_name=NAME, max_batch=8))
    with running_server(app) as url:
        yield {"url": url, "client": openai_client(url), "model": model, "tokenizer": tokenizer}


def chat(client, **kwargs):
    return client.chat.completions.create(model=NAME, messages=kwargs.pop("messages", MESSAGES), **kwargs)


def test_models_lists_the_served_model(served):
    models = served["client"].models.list()
    assert [m.id for m in models.data] == [NAME]


def test_chat_completion_shape_and_usage(served):
    tok = served["tokenizer"]
    r = chat(served["client"], max_tokens=12, temperature=0, extra_body={"ignore_eos": True})
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == NAME
    (choice,) = r.choices
    assert choice.index == 0 and choice.message.role == "assistant" and choice.finish_reason == "length"
    prompt_ids = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True)
    assert r.usage.prompt_tokens == len(prompt_ids)
    assert r.usage.completion_tokens == 12 and r.usage.total_tokens == len(prompt_ids) + 12
    assert choice.message.content  # random weights, but never nothing in 12 tokens


def test_chat_stream_matches_non_streaming(served):
    client = served["client"]
    full = chat(client, max_tokens=20, temperature=0, extra_body={"ignore_eos": True})
    chunks = list(chat(client, max_tokens=20, temperature=0, stream=True, stream_options={"include_usage": True},
                       extra_body={"ignore_eos": True}))
    assert {c.id for c in chunks} == {chunks[0].id} and all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1  # streamed in pieces, not in one go
    assert "".join(pieces) == full.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20
    assert chunks[-1].usage.prompt_tokens == full.usage.prompt_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_completion_stream_and_non_stream(served):
    client = served["client"]
    full = client.completions.create(model=NAME, prompt=PROMPT, max_tokens=15, temperature=0,
                                     extra_body={"ignore_eos": True})
    assert full.object == "text_completion" and full.choices[0].finish_reason == "length"
    assert full.usage.prompt_tokens == len(served["tokenizer"].encode(PROMPT)) and full.usage.completion_tokens == 15
    chunks = list(client.completions.create(model=NAME, prompt=PROMPT, max_tokens=15, temperature=0, stream=True,
                                            extra_body={"ignore_eos": True}))
    assert "".join(c.choices[0].text for c in chunks) == full.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["length"]


def test_completions_default_to_16_tokens_as_openai(served):
    r = served["client"].completions.create(model=NAME, prompt=PROMPT, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 16


def test_greedy_equals_llmlab_generate(served, serve_checkpoint):
    from click.testing import CliRunner

    from llmlab.cli.main import cli

    out = CliRunner().invoke(cli, ["generate", "--model", str(serve_checkpoint), "--prompt", PROMPT, "--temperature",
                                   "0", "--max-new-tokens", "25", "--ignore-eos", "--json"])
    assert out.exit_code == 0, out.output
    expected = json.loads(out.stdout)
    r = served["client"].completions.create(model=NAME, prompt=PROMPT, max_tokens=25, temperature=0,
                                            extra_body={"ignore_eos": True})
    assert r.choices[0].text == expected["text"] and expected["text"]
    assert r.usage.completion_tokens == expected["completion_tokens"]


def test_seed_reproduces_and_n_gives_distinct_choices(served):
    client = served["client"]
    kwargs = dict(max_tokens=12, temperature=1.0, seed=7, extra_body={"ignore_eos": True})
    a = chat(client, n=3, **kwargs)
    b = chat(client, n=3, **kwargs)
    texts = [c.message.content for c in a.choices]
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert texts == [c.message.content for c in b.choices]  # same seed, same choices
    assert len(set(texts)) == 3  # choice i samples with seed + i
    single = chat(client, **kwargs)
    assert single.choices[0].message.content == texts[0]
    assert chat(client, **{**kwargs, "seed": 8}).choices[0].message.content == texts[1]
    assert a.usage.completion_tokens == 36 and a.usage.prompt_tokens == single.usage.prompt_tokens


def test_n_streaming_interleaves_choices(served):
    chunks = list(served["client"].completions.create(
        model=NAME, prompt=PROMPT, n=2, max_tokens=8, seed=3, stream=True, extra_body={"ignore_eos": True}))
    texts = {0: "", 1: ""}
    for c in chunks:
        for ch in c.choices:
            texts[ch.index] += ch.text
    full = served["client"].completions.create(model=NAME, prompt=PROMPT, n=2, max_tokens=8, seed=3,
                                               extra_body={"ignore_eos": True})
    assert [texts[0], texts[1]] == [c.text for c in full.choices]


def test_batch_of_prompts_in_completions(served):
    prompts = [PROMPT, "Tom lives in", "Sam has 3 apples."]
    r = served["client"].completions.create(model=NAME, prompt=prompts, max_tokens=6, temperature=0, n=2)
    assert [c.index for c in r.choices] == list(range(6))
    for i, p in enumerate(prompts):
        alone = served["client"].completions.create(model=NAME, prompt=p, max_tokens=6, temperature=0)
        assert r.choices[2 * i].text == r.choices[2 * i + 1].text == alone.choices[0].text


def test_stop_strings(served):
    client = served["client"]
    base = client.completions.create(model=NAME, prompt=PROMPT, max_tokens=30, temperature=0,
                                     extra_body={"ignore_eos": True}).choices[0].text
    stop = base[len(base) // 2:len(base) // 2 + 3]
    cut = base.index(stop)
    r = client.completions.create(model=NAME, prompt=PROMPT, max_tokens=30, temperature=0, stop=[stop, "\x00never"],
                                  extra_body={"ignore_eos": True})
    assert r.choices[0].text == base[:cut] and r.choices[0].finish_reason == "stop"
    chunks = list(client.completions.create(model=NAME, prompt=PROMPT, max_tokens=30, temperature=0, stop=stop,
                                            stream=True, extra_body={"ignore_eos": True}))
    assert "".join(c.choices[0].text for c in chunks) == base[:cut]
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_logprobs_are_the_models(served):
    """Greedy with logprobs: each token is its position's most likely one, and its logprob is the
    model's log-softmax there (computed here with a plain forward pass)."""
    import torch

    model, tok = served["model"], served["tokenizer"]
    r = chat(served["client"], max_tokens=10, temperature=0, logprobs=True, top_logprobs=3,
             extra_body={"ignore_eos": True})
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens == 10
    prompt_ids = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True)
    ids = prompt_ids + [tok.token_to_id(_piece(tok, e)) for e in content]
    with torch.no_grad():
        logp = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    for i, entry in enumerate(content):
        pos = len(prompt_ids) - 1 + i
        assert entry.logprob == pytest.approx(logp[pos, ids[pos + 1]].item(), abs=1e-4)
        assert len(entry.top_logprobs) == 3
        assert [t.logprob for t in entry.top_logprobs] == sorted([t.logprob for t in entry.top_logprobs], reverse=True)
        assert entry.top_logprobs[0].token == entry.token  # greedy picks the most likely
        assert bytes(entry.bytes).decode("utf-8", errors="replace") == entry.token
    assert "".join(bytes(b for e in content for b in e.bytes).decode("utf-8", errors="replace")) \
        == r.choices[0].message.content


def _piece(tok, entry):
    """The vocabulary entry of a logprobs token (byte-level BPE spells bytes as printable characters)."""
    from llmlab.data.token_bytes import byte_level_decoder

    encoder = {b: c for c, b in byte_level_decoder().items()}
    return "".join(encoder[b] for b in entry.bytes)


def test_chat_stream_carries_logprobs(served):
    chunks = list(chat(served["client"], max_tokens=8, temperature=0, logprobs=True, top_logprobs=2, stream=True,
                       extra_body={"ignore_eos": True}))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    full = chat(served["client"], max_tokens=8, temperature=0, logprobs=True, top_logprobs=2,
                extra_body={"ignore_eos": True})
    assert [(e.token, round(e.logprob, 5)) for e in streamed] == \
        [(e.token, round(e.logprob, 5)) for e in full.choices[0].logprobs.content]


def test_completion_logprobs_format(served):
    r = served["client"].completions.create(model=NAME, prompt=PROMPT, max_tokens=8, temperature=0, logprobs=2,
                                            extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 8
    assert "".join(lp.tokens) == r.choices[0].text
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(8)]
    for tok, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) <= 2 and max(top.values()) == pytest.approx(value) and value <= 0


def test_llmlab_sampling_fields_as_extra_body(served):
    client = served["client"]
    greedy = client.completions.create(model=NAME, prompt=PROMPT, max_tokens=12, temperature=0,
                                       extra_body={"ignore_eos": True}).choices[0].text
    top1 = client.completions.create(model=NAME, prompt=PROMPT, max_tokens=12, temperature=1.5, seed=1,
                                     extra_body={"ignore_eos": True, "top_k": 1}).choices[0].text
    assert top1 == greedy  # top_k=1 leaves only the most likely token
    minp = client.completions.create(model=NAME, prompt=PROMPT, max_tokens=12, temperature=1.5, seed=1,
                                     extra_body={"ignore_eos": True, "min_p": 1.0}).choices[0].text
    assert minp == greedy
    penalised = client.completions.create(model=NAME, prompt=PROMPT, max_tokens=30, temperature=0,
                                          extra_body={"ignore_eos": True, "repetition_penalty": 5.0}).choices[0].text
    plain = client.completions.create(model=NAME, prompt=PROMPT, max_tokens=30, temperature=0,
                                      extra_body={"ignore_eos": True}).choices[0].text
    assert penalised != plain


def test_presence_and_frequency_penalties_change_output(served):
    client = served["client"]
    kwargs = dict(model=NAME, prompt=PROMPT, max_tokens=40, temperature=0, extra_body={"ignore_eos": True})
    plain = client.completions.create(**kwargs).choices[0].text
    assert client.completions.create(presence_penalty=2.0, **kwargs).choices[0].text != plain
    assert client.completions.create(frequency_penalty=2.0, **kwargs).choices[0].text != plain


def test_max_completion_tokens(served):
    r = chat(served["client"], max_completion_tokens=5, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 5 and r.choices[0].finish_reason == "length"


def test_token_id_prompts(served):
    ids = served["tokenizer"].encode(PROMPT)
    a = served["client"].completions.create(model=NAME, prompt=ids, max_tokens=6, temperature=0)
    b = served["client"].completions.create(model=NAME, prompt=PROMPT, max_tokens=6, temperature=0)
    assert a.choices[0].text == b.choices[0].text


def test_health_and_metrics(served):
    assert http("GET", served["url"] + "/health") == (200, '{"status":"ok"}')
    status, text = http("GET", served["url"] + "/metrics")
    assert status == 200
    for name in ("llmlab_requests_total", "llmlab_generation_tokens_total", "llmlab_queue_depth",
                 "llmlab_running_rows", "llmlab_time_to_first_token_seconds_bucket",
                 "llmlab_inter_token_latency_seconds_bucket"):
        assert name in text
    assert metric(text, "llmlab_requests_total", 'endpoint="completions",status="200"') > 0
    # The counters move by exactly what a request reports in its usage.
    before = text
    r = served["client"].completions.create(model=NAME, prompt=PROMPT, max_tokens=7, extra_body={"ignore_eos": True})
    after = http("GET", served["url"] + "/metrics")[1]
    for name, used in (("llmlab_generation_tokens_total", r.usage.completion_tokens),
                       ("llmlab_prompt_tokens_total", r.usage.prompt_tokens)):
        assert metric(after, name) - metric(before, name) == used
    assert metric(after, "llmlab_request_finished_total", 'finish_reason="length"') \
        == metric(before, "llmlab_request_finished_total", 'finish_reason="length"') + 1
    assert metric(after, "llmlab_time_to_first_token_seconds_count") \
        == metric(before, "llmlab_time_to_first_token_seconds_count") + 1
    assert metric(after, "llmlab_inter_token_latency_seconds_count") \
        == metric(before, "llmlab_inter_token_latency_seconds_count") + 6
    assert metric(after, "llmlab_running_rows") == metric(after, "llmlab_queue_depth") == 0
