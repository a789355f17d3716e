"""Running `llmlab serve`'s app in a test: uvicorn in a thread on a free localhost port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Iterator


@contextlib.contextmanager
def running_server(app) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (a free port) in a background thread; yields the base URL
    (http://127.0.0.1:PORT). Stops it on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # A test that fails with streams still open must not hang the shutdown.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=5, timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def openai_client(base_url: str, api_key: str = "unused", **kwargs):
    """The official client, without retries (a 429 or 503 must reach the test as it is)."""
    import openai

    return openai.OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0, timeout=60, **kwargs)


def metric(text: str, name: str, labels: str = "") -> float:
    """One sample's value from Prometheus text (`name{labels} value`); 0 when absent."""
    key = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return 0.0


def http(method: str, url: str, body: bytes | dict | None = None, headers: dict | None = None) -> tuple[int, str]:
    """(status, body text) of one plain HTTP request (the standard library: no client's opinions)."""
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def slowed(model, seconds: float = 0.003):
    """`model`, taking at least `seconds` a forward pass: a long generation then stays running for a
    known minimum time, so a test that interrupts it never races its natural end on a fast machine."""
    import time

    model.register_forward_pre_hook(lambda module, args: time.sleep(seconds))
    return model

