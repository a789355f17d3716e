"""Continuous batching under load: a request's output does not depend on what else runs beside it, and
a client that goes away frees its batch row at the next step (seen through /metrics)."""

from __future__ import annotations

import http.client as httpclient
import json
import threading
import time
from urllib.parse import urlsplit

import pytest
from serve_helpers import http, metric, openai_client, running_server, slowed

pytest.importorskip("openai")
pytest.importorskip("fastapi")

NAME = "m"
OTHERS = 16


@pytest.fixture(scope="module")
def served(serve_checkpoint):
    from llmlab.checkpoint import load
    from llmlab.serve import ServeConfig, create_app

    model, tokenizer = load(serve_checkpoint)
    with running_server(create_app(slowed(model), tokenizer, ServeConfig(model_name=NAME, max_batch=32))) as url:
        yield url


def metrics(url: str) -> str:
    return http("GET", url + "/metrics")[1]


def wait_for(url: str, condition, what: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = metrics(url)
        if condition(text):
            return text
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{text}"
        time.sleep(0.02)


def open_stream(url: str, body: dict) -> tuple[httpclient.HTTPConnection, httpclient.HTTPResponse]:
    """A raw streaming request, so the test decides exactly when the connection closes."""
    parts = urlsplit(url)
    conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("POST", "/v1/completions", json.dumps({"model": NAME, "stream": True, **body}),
                 {"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    return conn, response


def read_events(response: httpclient.HTTPResponse, count: int) -> list[dict]:
    events = []
    while len(events) < count:
        line = response.readline().decode().strip()
        if line.startswith("data: {"):
            events.append(json.loads(line[6:]))
    return events


@pytest.mark.parametrize("sampling", [dict(temperature=1.0, seed=11, top_p=0.9), dict(temperature=0)],
                         ids=["seeded", "greedy"])
def test_output_is_the_same_alone_and_among_16_others(served, sampling):
    client = openai_client(served)
    probe = dict(model=NAME, prompt="Tom lives in Pinebrook. He", max_tokens=30, extra_body={"ignore_eos": True},
                 **sampling)
    alone = client.completions.create(**probe).choices[0].text

    # 16 long streams with other prompts (other lengths: other padding) and other settings.
    streams = [open_stream(served, {"prompt": "Once upon a time " * (1 + i % 5), "max_tokens": 900, "seed": i,
                                    "temperature": 0.5 + i / 16, "ignore_eos": True, "presence_penalty": i / 10})
               for i in range(OTHERS)]
    try:
        for _, response in streams:
            read_events(response, 1)
        wait_for(served, lambda t: metric(t, "llmlab_running_rows") == OTHERS, "16 running rows")
        among = client.completions.create(**probe).choices[0].text
        assert metric(metrics(served), "llmlab_running_rows") == OTHERS  # they were running all along
    finally:
        for conn, _ in streams:
            conn.close()
    assert among == alone
    wait_for(served, lambda t: metric(t, "llmlab_running_rows") == 0, "the closed streams' rows to be freed")


def test_disconnected_stream_frees_its_row(served):
    before = metrics(served)
    conn, response = open_stream(served, {"prompt": "Once", "max_tokens": 1000, "ignore_eos": True})
    read_events(response, 3)
    assert metric(metrics(served), "llmlab_running_rows") == 1
    conn.close()
    after = wait_for(served, lambda t: metric(t, "llmlab_running_rows") == 0, "the row to be freed")
    aborted = 'finish_reason="abort"'
    assert metric(after, "llmlab_request_finished_total", aborted) == \
        metric(before, "llmlab_request_finished_total", aborted) + 1
    generated = metric(after, "llmlab_generation_tokens_total") - metric(before, "llmlab_generation_tokens_total")
    assert generated < 1000  # stopped early, not run to the end
    time.sleep(0.2)
    assert metric(metrics(served), "llmlab_generation_tokens_total") == metric(after, "llmlab_generation_tokens_total")


def test_disconnected_non_streaming_request_frees_its_row(served):
    before = metrics(served)
    parts = urlsplit(served)
    conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("POST", "/v1/completions", json.dumps({"model": NAME, "prompt": "Once", "max_tokens": 1000,
                                                        "ignore_eos": True}), {"Content-Type": "application/json"})
    wait_for(served, lambda t: metric(t, "llmlab_running_rows") == 1, "the request to run")
    conn.close()
    after = wait_for(served, lambda t: metric(t, "llmlab_running_rows") == 0, "the row to be freed")
    aborted = 'finish_reason="abort"'
    assert metric(after, "llmlab_request_finished_total", aborted) == \
        metric(before, "llmlab_request_finished_total", aborted) + 1


def test_concurrent_clients_all_get_complete_answers(served):
    """32 clients at once (twice the rows of the other tests), half streaming: every one gets its
    whole answer, each equal to what it gets alone."""
    client = openai_client(served)
    prompts = [f"Sam has {i} apples." for i in range(32)]
    alone = {p: client.completions.create(model=NAME, prompt=p, max_tokens=12, temperature=0).choices[0].text
             for p in prompts[:4]}
    results: dict[str, str] = {}

    def ask(i: int, p: str) -> None:
        if i % 2:
            results[p] = "".join(c.choices[0].text for c in client.completions.create(
                model=NAME, prompt=p, max_tokens=12, temperature=0, stream=True))
        else:
            results[p] = client.completions.create(model=NAME, prompt=p, max_tokens=12, temperature=0).choices[0].text

    threads = [threading.Thread(target=ask, args=(i, p)) for i, p in enumerate(prompts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 32
    assert {p: results[p] for p in alone} == alone
