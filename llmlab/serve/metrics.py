"""The server's metrics in Prometheus' text exposition format (`GET /metrics`).

A few counters, gauges and histograms are all a server of this size needs, so they are written
here in ~80 lines rather than pulled in from a client library. Updates come from the engine's
thread and from request handlers; one lock keeps a scrape consistent.
"""

from __future__ import annotations

import bisect
import threading
from typing import Callable

# Latency buckets in seconds, as vLLM's: fine below 100 ms where CPU decoding lives.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 1.0, 2.5)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1


class Metrics:
    """Everything `/metrics` shows. `gauges` maps a metric name to a function read at scrape time
    (queue depth and running rows come straight from the engine)."""

    def __init__(self, gauges: dict[str, tuple[str, Callable[[], float]]] | None = None):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}  # (endpoint, HTTP status) -> count
        self.finished: dict[str, int] = {}  # finish_reason -> choices finished
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.gauges = dict(gauges or {})

    def count_request(self, endpoint: str, status: int) -> None:
        with self._lock:
            key = (endpoint, status)
            self.requests[key] = self.requests.get(key, 0) + 1

    def count_finished(self, finish_reason: str, prompt_tokens: int) -> None:
        with self._lock:
            self.finished[finish_reason] = self.finished.get(finish_reason, 0) + 1
            self.prompt_tokens += prompt_tokens

    def observe_tokens(self, n: int, ttft: float | None = None, itl: float | None = None) -> None:
        with self._lock:
            self.generation_tokens += n
            if ttft is not None:
                self.ttft.observe(ttft)
            if itl is not None:
                self.itl.observe(itl)

    def render(self) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])

        with self._lock:
            family("llmlab_requests_total", "counter", "HTTP requests to the generation endpoints, by status.")
            for (endpoint, status), n in sorted(self.requests.items()):
                lines.append(f'llmlab_requests_total{{endpoint="{endpoint}",status="{status}"}} {n}')
            family("llmlab_request_finished_total", "counter", "Generated choices that ended, by finish_reason.")
            for reason, n in sorted(self.finished.items()):
                lines.append(f'llmlab_request_finished_total{{finish_reason="{reason}"}} {n}')
            family("llmlab_prompt_tokens_total", "counter", "Prompt tokens of finished choices.")
            lines.append(f"llmlab_prompt_tokens_total {self.prompt_tokens}")
            family("llmlab_generation_tokens_total", "counter", "Tokens generated.")
            lines.append(f"llmlab_generation_tokens_total {self.generation_tokens}")
            for name, (help_text, read) in self.gauges.items():
                family(name, "gauge", help_text)
                lines.append(f"{name} {read()}")
            for name, hist, help_text in (
                ("llmlab_time_to_first_token_seconds", self.ttft, "From arrival to the first generated token."),
                ("llmlab_inter_token_latency_seconds", self.itl, "Between consecutive tokens of one choice."),
            ):
                family(name, "histogram", help_text)
                cumulative = 0
                for bound, n in zip((*hist.buckets, float("inf")), hist.counts):
                    cumulative += n
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    lines.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
                lines.append(f"{name}_sum {hist.sum}")
                lines.append(f"{name}_count {hist.count}")
        return "\n".join(lines) + "\n"
