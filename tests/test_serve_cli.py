"""`llmlab serve` as a user runs it: a real process, SIGTERM drains running requests (new ones get 503,
/health says draining), then the process exits 0."""

from __future__ import annotations

import json
import signal
import time

import pytest
from serve_helpers import http

pytest.importorskip("fastapi")

pytestmark = pytest.mark.slow  # starts a second Python with torch


def test_sigterm_drains_running_requests_then_exits(serve_checkpoint):
    import http.client as httpclient

    from llmlab.serve.runner import spawn

    proc, url = spawn(serve_checkpoint, "--served-model-name", "m", "--threads", "1")
    try:
        port = int(url.rsplit(":", 1)[1])
        conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/v1/completions", json.dumps({
            "model": "m", "prompt": "Once", "max_tokens": 1000, "ignore_eos": True, "stream": True}),
            {"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200 and response.readline().startswith(b"data: {")
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while http("GET", url + "/health")[0] != 503:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        status, body = http("POST", url + "/v1/completions", {"model": "m", "prompt": "new"})
        assert status == 503 and json.loads(body)["error"]["code"] == "shutting_down"
        assert proc.poll() is None  # still finishing the running stream
        lines = [line.decode().strip() for line in response.read().splitlines() if line.strip()]
        assert lines[-1] == "data: [DONE]"
        assert json.loads(lines[-2][6:])["choices"][0]["finish_reason"] == "length"  # ran to its end
        assert proc.wait(timeout=30) == 0
        assert any("draining" in line for line in proc.log_lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_load_bench_reports_the_issues_keys(serve_checkpoint, capsys):
    """bench/serve_load.py end to end, kept small: one JSON object with exactly the issue's keys,
    and no request failed."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "bench" / "serve_load.py"
    spec = importlib.util.spec_from_file_location("serve_load", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--model", str(serve_checkpoint), "--max-tokens", "4", "--soak-requests", "20",
                       "--max-seconds", "60", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert set(result) == {"tokens_per_s_c1", "tokens_per_s_c16", "batching_speedup_c16", "ttft_p95_ms_c16", "errors"}
    assert result["errors"] == 0 and result["tokens_per_s_c16"] > 0
    assert result["batching_speedup_c16"] == pytest.approx(result["tokens_per_s_c16"] / result["tokens_per_s_c1"],
                                                           rel=0.01)
    assert "soak: 20 requests (0 errors)" in captured.err and "clients" in captured.err
