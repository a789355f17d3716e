"""The one loop that drives the engine: continuous batching for the server.

A background thread calls `Engine.step()` while there is work (each call admits waiting
requests into the running batch or advances every running row by one token) and sleeps when
there is none. Request handlers live on the asyncio event loop; they `submit()` requests
(thread-safe: the engine queues them for the next step) and read that request's StepOutputs from
an asyncio queue that this thread fills as the engine produces them. `abort()` (a client that went
away) frees the row at the next step.

The engine samples; this loop only schedules and delivers (and times tokens for /metrics).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field

from llmlab.errors import ConfigError
from llmlab.infer.engine import Engine, StepOutput
from llmlab.infer.params import GenerationConfig
from llmlab.serve.errors import APIError
from llmlab.serve.metrics import Metrics

log = logging.getLogger("llmlab.serve")


class EngineFailure(Exception):
    """The engine raised inside step(): every request in flight ends with a server error."""


@dataclass
class _Subscriber:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue
    t_arrival: float = field(default_factory=time.perf_counter)
    t_last: float | None = None


class EngineLoop:
    def __init__(self, engine: Engine, metrics: Metrics, *, max_queue: int):
        self.engine = engine
        self.metrics = metrics
        self.max_queue = max_queue
        self._subs: dict[str, _Subscriber] = {}
        self._lock = threading.Lock()  # guards _subs and swapping the engine after a failure
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmlab-engine-loop", daemon=True)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    # ------------------------------------------------------------------ from the event loop
    def submit(self, requests: list[tuple[list[int], GenerationConfig]], request_id: str, *,
               stream: bool) -> tuple[list[str], asyncio.Queue]:
        """Queue one engine request per (prompt ids, config), all or none; their outputs arrive on
        the returned queue as produced. Raises APIError 429 when the waiting queue cannot take them
        all, and ConfigError for a prompt the engine rejects (too long for the context)."""
        if len(requests) > self.max_queue:
            raise APIError(400, f"this request asks for {len(requests)} choices (prompts x n), more than the server's "
                                f"queue holds (--max-queue {self.max_queue})", param="n")
        if self.engine.num_waiting + len(requests) > self.max_queue:
            raise APIError(429, f"the server's queue is full ({self.engine.num_waiting} requests waiting, "
                                f"--max-queue {self.max_queue}); retry later", "rate_limit_error", None, "queue_full")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        ids: list[str] = []
        try:
            for i, (prompt, config) in enumerate(requests):
                rid = f"{request_id}-{i}"
                with self._lock:  # subscribed before queued: the first output cannot arrive unseen
                    self._subs[rid] = _Subscriber(loop, queue)
                    self.engine.add_request(prompt, config, request_id=rid, stream=stream)
                ids.append(rid)
        except ConfigError:
            with self._lock:
                self._subs.pop(f"{request_id}-{len(ids)}", None)
            self.abort(ids)
            raise
        self._wake.set()
        return ids, queue

    def abort(self, ids: list[str]) -> None:
        """Stop these requests and free their rows at the next step; no more outputs are delivered."""
        with self._lock:
            for rid in ids:
                self._subs.pop(rid, None)
                self.engine.abort(rid)
        self._wake.set()

    @property
    def num_running(self) -> int:
        return self.engine.num_running

    @property
    def num_waiting(self) -> int:
        return self.engine.num_waiting

    # ------------------------------------------------------------------ the engine's thread
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # cleared before looking, so a submit() in between is not missed
            if not self.engine.has_unfinished():
                self._wake.wait(timeout=0.5)
                continue
            try:
                outputs = self.engine.step()
            except Exception:  # a bug or out of memory: fail what is in flight, keep serving
                log.error("engine step failed; failing %d requests:\n%s", len(self._subs), traceback.format_exc())
                self._reset_engine()
                continue
            self._deliver(outputs)

    def _deliver(self, outputs: list[StepOutput]) -> None:
        now = time.perf_counter()
        batches: dict[asyncio.AbstractEventLoop, list] = {}
        for out in outputs:
            with self._lock:
                sub = self._subs.pop(out.request_id, None) if out.finished else self._subs.get(out.request_id)
            if out.finished:
                r = out.result
                self.metrics.count_finished(r.finish_reason, len(r.prompt_token_ids))
            if sub is None:  # aborted by its client: nobody listens
                continue
            if out.token_ids:
                ttft = itl = None
                if sub.t_last is None:
                    ttft = now - sub.t_arrival
                else:
                    itl = now - sub.t_last
                sub.t_last = now
                self.metrics.observe_tokens(len(out.token_ids), ttft, itl)
            batches.setdefault(sub.loop, []).append((sub.queue, out))
        # One wake-up of the event loop per step, not one per row: at 64 rows that matters.
        for loop, items in batches.items():
            loop.call_soon_threadsafe(_put_all, items)

    def _reset_engine(self) -> None:
        old = self.engine
        with self._lock:
            self.engine = Engine(old.model, old.tokenizer, max_batch_size=old.max_batch_size,
                                 default_config=old.default_config)
            subs, self._subs = self._subs, {}
        failure = EngineFailure("the engine failed while generating; see the server's log")
        for sub in subs.values():
            sub.loop.call_soon_threadsafe(sub.queue.put_nowait, failure)


def _put_all(items: list[tuple[asyncio.Queue, object]]) -> None:
    for queue, item in items:
        queue.put_nowait(item)
