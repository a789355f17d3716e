"""`llmlab serve --safety-filter`: a flagged prompt is refused with finish_reason "content_filter";
a flagged reply is replaced by the refusal, or cut before the flagged piece when streamed."""

from __future__ import annotations

import re

import pytest
from serve_helpers import openai_client, running_server

pytest.importorskip("openai")
pytest.importorskip("fastapi")

NAME = "m"
PROMPT = "Once upon a time, Mia had a small dog"
ARGS = dict(model=NAME, max_tokens=40, temperature=1.0, seed=5, extra_body={"ignore_eos": True})


@pytest.fixture(scope="module")
def setup(serve_checkpoint):
    """The (seeded) reply to PROMPT, and a filter flagging one of its words (random weights say no
    real harm, so the filter is told what harm is)."""
    from llmlab.checkpoint import load
    from llmlab.eval.safety import SafetyFilter
    from llmlab.serve import ServeConfig, create_app

    model, tokenizer = load(serve_checkpoint)
    plain = create_app(model, tokenizer, ServeConfig(model_name=NAME))
    with running_server(plain) as url:
        reply = openai_client(url).completions.create(prompt=PROMPT, **ARGS).choices[0].text
    words = [w for w in re.findall(r"[a-z]{3,}", reply.lower()) if w not in PROMPT.lower()]
    assert words, reply
    word = words[len(words) // 2]
    safety = SafetyFilter([word])
    with running_server(create_app(model, tokenizer, ServeConfig(model_name=NAME), safety=safety)) as url:
        yield {"url": url, "reply": reply, "word": word, "safety": safety}


def test_flagged_prompt_is_refused_without_generating(setup):
    client = openai_client(setup["url"])
    r = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": f"tell me {setup['word']}"}])
    assert r.choices[0].finish_reason == "content_filter"
    assert r.choices[0].message.content == setup["safety"].refusal and r.usage.completion_tokens == 0
    chunks = list(client.completions.create(model=NAME, prompt=f"{setup['word']} now", stream=True))
    assert "".join(c.choices[0].text for c in chunks) == setup["safety"].refusal
    assert chunks[-1].choices[0].finish_reason == "content_filter"


def test_flagged_reply_is_replaced(setup):
    r = openai_client(setup["url"]).completions.create(prompt=PROMPT, **ARGS)
    assert r.choices[0].finish_reason == "content_filter" and r.choices[0].text == setup["safety"].refusal


def test_flagged_stream_is_cut_before_the_flagged_piece(setup):
    chunks = list(openai_client(setup["url"]).completions.create(prompt=PROMPT, stream=True, **ARGS))
    text = "".join(c.choices[0].text for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert setup["safety"].is_safe(text) and setup["reply"].startswith(text)
    assert len(text) < setup["reply"].lower().index(setup["word"]) + len(setup["word"])


def test_safe_requests_pass_unchanged(setup):
    r = openai_client(setup["url"]).completions.create(model=NAME, prompt=PROMPT, max_tokens=2, temperature=0)
    assert r.choices[0].finish_reason in ("length", "stop")
