"""Every error of `llmlab serve` in OpenAI's shape and with its status, as the official client sees it:
400 invalid parameters and prompts longer than the context, 401 API key, 404 unknown model, 429 queue
full, 503 shutting down."""

from __future__ import annotations

import json
import threading
import time

import pytest
from serve_helpers import http, metric, openai_client, running_server, slowed

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

NAME = "m"
MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def loaded(serve_checkpoint):
    from llmlab.checkpoint import load

    return load(serve_checkpoint)


def make_app(loaded, **config):
    from llmlab.serve import ServeConfig, create_app

    return create_app(*loaded, ServeConfig(model_name=NAME, **config))


@pytest.fixture(scope="module")
def served(loaded):
    with running_server(make_app(loaded)) as url:
        yield url


def error_of(exc: openai.APIStatusError) -> dict:
    """The body's error object, checked to have exactly OpenAI's four keys."""
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"] and "\n" not in body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize("kwargs, param", [
    (dict(temperature=-1), "temperature"),
    (dict(top_p=1.5), "top_p"),
    (dict(top_p=0), "top_p"),
    (dict(n=0), "n"),
    (dict(n=129), "n"),
    (dict(max_tokens=0), "max_tokens"),
    (dict(max_completion_tokens=-3), "max_completion_tokens"),
    (dict(presence_penalty=2.5), "presence_penalty"),
    (dict(frequency_penalty=-3), "frequency_penalty"),
    (dict(stop=[""]), "stop"),
    (dict(seed=-1), "seed"),
    (dict(logprobs=True, top_logprobs=21), "top_logprobs"),
    (dict(top_logprobs=2), "top_logprobs"),  # without logprobs=true
    (dict(temperature="hot"), "temperature"),
    (dict(n=True), "n"),
    (dict(stream_options={"include_usage": True}), "stream_options"),  # without stream
    (dict(logit_bias={"5": 10}), "logit_bias"),
    (dict(tools=[{"type": "function", "function": {"name": "f"}}]), "tools"),
    (dict(extra_body={"top_k": -1}), "top_k"),
    (dict(extra_body={"min_p": 2}), "min_p"),
    (dict(extra_body={"repetition_penalty": 0}), "repetition_penalty"),
    (dict(messages=[]), "messages"),
    (dict(messages=[{"role": "wizard", "content": "hi"}]), "messages.0.role"),
])
def test_invalid_chat_parameters_are_400(served, kwargs, param):
    client = openai_client(served)
    messages = kwargs.pop("messages", MESSAGES)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=NAME, messages=messages, **kwargs)
    error = error_of(info.value)
    assert info.value.status_code == 400 and error["type"] == "invalid_request_error"
    assert error["param"] == param, error


@pytest.mark.parametrize("kwargs, param", [
    (dict(prompt=""), "prompt"),
    (dict(prompt=[]), "prompt"),
    (dict(prompt=[10**6]), "prompt"),  # a token id outside the vocabulary
    (dict(prompt="hi", logprobs=-1), "logprobs"),
    (dict(prompt="hi", echo=True), "echo"),
])
def test_invalid_completion_parameters_are_400(served, kwargs, param):
    with pytest.raises(openai.BadRequestError) as info:
        openai_client(served).completions.create(model=NAME, **kwargs)
    assert error_of(info.value)["param"] == param


def test_prompt_longer_than_the_context_is_400(served, loaded):
    model, _ = loaded
    long_prompt = "Once upon a time " * model.config.context_length
    with pytest.raises(openai.BadRequestError) as info:
        openai_client(served).completions.create(model=NAME, prompt=long_prompt)
    error = error_of(info.value)
    assert error["code"] == "context_length_exceeded" and error["param"] == "prompt"
    assert str(model.config.context_length) in error["message"]
    with pytest.raises(openai.BadRequestError) as info:
        openai_client(served).chat.completions.create(model=NAME, messages=[{"role": "user", "content": long_prompt}])
    assert error_of(info.value)["code"] == "context_length_exceeded"


def test_malformed_bodies_are_400_in_openai_shape(served):
    url = served + "/v1/chat/completions"
    status, text = http("POST", url, b"{not json")
    assert status == 400 and json.loads(text)["error"]["message"] == "the request body is not valid JSON"
    status, text = http("POST", url, {"model": NAME})
    assert status == 400 and json.loads(text)["error"]["param"] == "messages"
    assert "missing" in json.loads(text)["error"]["message"]


def test_unknown_model_is_404(served):
    with pytest.raises(openai.NotFoundError) as info:
        openai_client(served).chat.completions.create(model="gpt-9", messages=MESSAGES)
    error = error_of(info.value)
    assert error["code"] == "model_not_found" and "gpt-9" in error["message"]


def test_unknown_route_is_404_in_openai_shape(served):
    status, text = http("GET", served + "/v1/embeddings")
    assert status == 404 and set(json.loads(text)["error"]) == {"message", "type", "param", "code"}


def test_api_key(loaded):
    with running_server(make_app(loaded, api_key="s3cret")) as url:
        with pytest.raises(openai.AuthenticationError) as info:
            openai_client(url, api_key="wrong").models.list()
        assert info.value.status_code == 401 and error_of(info.value)["code"] == "invalid_api_key"
        # No key at all (the client refuses to send none, so plain HTTP).
        status, text = http("POST", url + "/v1/chat/completions", {"model": NAME, "messages": MESSAGES})
        assert status == 401 and json.loads(text)["error"]["code"] == "invalid_api_key"
        assert "Authorization: Bearer" in json.loads(text)["error"]["message"]
        # The key is checked first: without it, even an invalid body is a 401, not a 400.
        assert http("POST", url + "/v1/completions", {"model": NAME, "prompt": "x", "top_p": 7})[0] == 401
        client = openai_client(url, api_key="s3cret")
        assert [m.id for m in client.models.list().data] == [NAME]
        assert client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=2).choices
        # The page, health and metrics need no key.
        assert http("GET", url + "/health")[0] == http("GET", url + "/metrics")[0] == http("GET", url + "/")[0] == 200


def test_full_queue_is_429(serve_checkpoint):
    """One row, one waiting place: a long stream holds the row, a second request waits, a third is
    refused with 429 (and the client does not retry it: max_retries=0)."""
    from llmlab.checkpoint import load

    model, tokenizer = load(serve_checkpoint)
    with running_server(make_app((slowed(model), tokenizer), max_batch=1, max_queue=1)) as url:
        client = openai_client(url)
        long = dict(model=NAME, prompt="Once", max_tokens=900, extra_body={"ignore_eos": True})
        stream = client.completions.create(stream=True, **long)
        next(iter(stream))  # it holds the only row
        waiting = threading.Thread(target=lambda: client.completions.create(max_tokens=1, model=NAME, prompt="x"))
        waiting.start()
        deadline = time.monotonic() + 20
        while metric(http("GET", url + "/metrics")[1], "llmlab_queue_depth") < 1:
            assert time.monotonic() < deadline, "the second request never queued"
            time.sleep(0.01)
        with pytest.raises(openai.RateLimitError) as info:
            client.completions.create(model=NAME, prompt="y", max_tokens=1)
        error = error_of(info.value)
        assert info.value.status_code == 429 and error["code"] == "queue_full"
        with pytest.raises(openai.BadRequestError) as info:  # could never fit: not a retry-later 429
            client.completions.create(model=NAME, prompt="y", max_tokens=1, n=2)
        assert error_of(info.value)["param"] == "n"
        stream.close()  # frees the row: the waiting request runs
        waiting.join(timeout=30)
        assert not waiting.is_alive()
        text = http("GET", url + "/metrics")[1]
        assert metric(text, "llmlab_requests_total", 'endpoint="completions",status="429"') == 1


def test_draining_server_is_503(loaded):
    app = make_app(loaded)
    with running_server(app) as url:
        app.state.server.begin_drain()
        with pytest.raises(openai.InternalServerError) as info:
            openai_client(url).chat.completions.create(model=NAME, messages=MESSAGES)
        assert info.value.status_code == 503 and error_of(info.value)["code"] == "shutting_down"
        assert http("GET", url + "/health") == (503, '{"status":"draining"}')


def test_engine_failure_is_500_and_the_server_recovers(serve_checkpoint):
    """A failure inside the engine's step (a bug, out of memory) ends the requests in flight with a
    500 in OpenAI's shape, streamed ones with an error event, and the server keeps serving."""
    from llmlab.checkpoint import load

    model, tokenizer = load(serve_checkpoint)
    failing = {"on": True}

    def explode(module, args):
        if failing["on"]:
            raise RuntimeError("simulated failure")

    model.register_forward_pre_hook(explode)
    with running_server(make_app((model, tokenizer))) as url:
        client = openai_client(url)
        with pytest.raises(openai.InternalServerError) as info:
            client.completions.create(model=NAME, prompt="Once", max_tokens=3)
        assert info.value.status_code == 500 and error_of(info.value)["type"] == "server_error"
        status, body = http("POST", url + "/v1/completions", {"model": NAME, "prompt": "Once", "stream": True})
        assert status == 200 and '"server_error"' in body and "[DONE]" not in body
        failing["on"] = False
        assert client.completions.create(model=NAME, prompt="Once", max_tokens=3).usage.completion_tokens >= 1



def test_chat_without_a_chat_template_is_400(serve_checkpoint):
    from llmlab.checkpoint import load

    model, tokenizer = load(serve_checkpoint)
    tokenizer.chat_template = None
    with running_server(make_app((model, tokenizer))) as url:
        with pytest.raises(openai.BadRequestError) as info:
            openai_client(url).chat.completions.create(model=NAME, messages=MESSAGES)
        assert "/v1/completions" in error_of(info.value)["message"]
        assert openai_client(url).completions.create(model=NAME, prompt="Once", max_tokens=2).choices
