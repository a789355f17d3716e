"""One generation request, from submitted prompts to OpenAI's response objects.

`Completion` submits a request's choices (prompts x n) to the engine loop and turns the
StepOutputs coming back into either one response object (`collect`) or server-sent events
(`events`: `data: {chunk}` lines, a chunk with each choice's finish_reason, `data: [DONE]`). The
chat and the (legacy) text completion formats differ only in how a choice's text and logprobs are
wrapped, which `_Format` holds.

With a safety filter, a flagged prompt is answered with the filter's refusal and
finish_reason "content_filter" without generating; a flagged completion is replaced by the
refusal (non-streaming) or cut before the flagged piece is sent (streaming), with the same
finish_reason.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from llmlab.infer.engine import StepOutput
from llmlab.serve.errors import APIError
from llmlab.serve.loop import EngineFailure, EngineLoop
from llmlab.serve.protocol import TokenText

DISCONNECT_POLL_S = 0.25  # how often a non-streaming request checks that its client is still there
_GONE = object()  # queued by the watcher when the client of a non-streaming request has gone


@dataclass
class _Choice:
    index: int
    prompt_tokens: int
    request_id: str | None = None  # None: refused before generating
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict[int, float]] = field(default_factory=list)
    finish_reason: str | None = None


class _Format:
    """The chat format (`chat.completion`, message/delta, logprobs.content)."""

    object = "chat.completion"
    chunk_object = "chat.completion.chunk"
    id_prefix = "chatcmpl-"

    def __init__(self, token_text: TokenText):
        self.token_text = token_text

    def logprobs(self, ids, lps, tops, offset: int = 0) -> dict[str, Any]:
        return {"content": self.token_text.chat_entries(ids, lps, tops or None)}

    def choice(self, c: _Choice, logprobs: dict | None) -> dict[str, Any]:
        return {"index": c.index, "message": {"role": "assistant", "content": c.text}, "logprobs": logprobs,
                "finish_reason": c.finish_reason}

    def first_delta(self, index: int) -> dict[str, Any] | None:
        return {"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}

    def delta(self, index: int, text: str, logprobs: dict | None, finish_reason: str | None) -> dict[str, Any]:
        delta = {"content": text} if finish_reason is None else {}
        return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}


class _TextFormat(_Format):
    """The legacy completions format (`text_completion`, text, parallel logprobs lists)."""

    object = chunk_object = "text_completion"
    id_prefix = "cmpl-"

    def logprobs(self, ids, lps, tops, offset: int = 0) -> dict[str, Any]:
        return self.token_text.completion_logprobs(ids, lps, tops or None, offset)

    def choice(self, c: _Choice, logprobs: dict | None) -> dict[str, Any]:
        return {"index": c.index, "text": c.text, "logprobs": logprobs, "finish_reason": c.finish_reason}

    def first_delta(self, index: int) -> None:
        return None

    def delta(self, index: int, text: str, logprobs: dict | None, finish_reason: str | None) -> dict[str, Any]:
        return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}


class Completion:
    def __init__(self, loop: EngineLoop, token_text: TokenText, *, chat: bool, model_name: str, n: int,
                 want_logprobs: bool, include_usage: bool, safety=None):
        self.loop = loop
        self.n = n  # choices per prompt
        self.format = (_Format if chat else _TextFormat)(token_text)
        self.model_name = model_name
        self.want_logprobs = want_logprobs
        self.include_usage = include_usage
        self.safety = safety
        self.id = self.format.id_prefix + uuid.uuid4().hex
        self.created = int(time.time())
        self.choices: list[_Choice] = []
        self.queue: asyncio.Queue | None = None
        self._by_request: dict[str, _Choice] = {}
        self.stop_ids: frozenset[int] = frozenset()

    # ------------------------------------------------------------------ submitting
    def submit(self, prompts: list[list[int]], configs: list, *, stream: bool, refuse: bool = False) -> None:
        """One choice per (prompt, config) pair. refuse: answer each with the safety filter's
        refusal instead of generating (a flagged prompt)."""
        self.choices = [_Choice(i, len(p)) for i, p in enumerate(prompts)]
        if refuse:
            for c in self.choices:
                c.text, c.finish_reason = self.safety.refusal, "content_filter"
            return
        self.stop_ids = configs[0].stop_token_set(self.loop.engine.tokenizer)
        ids, self.queue = self.loop.submit(list(zip(prompts, configs)), self.id, stream=stream)
        for rid, c in zip(ids, self.choices):
            c.request_id = rid
            self._by_request[rid] = c

    def abort(self) -> None:
        self.loop.abort([c.request_id for c in self.choices if c.request_id and c.finish_reason is None])

    @property
    def done(self) -> bool:
        return all(c.finish_reason is not None for c in self.choices)

    async def _next(self) -> tuple[_Choice, StepOutput] | None:
        """The next output of one of this request's choices; None once its client has gone."""
        out = await self.queue.get()
        if out is _GONE:
            return None
        if isinstance(out, EngineFailure):
            raise APIError(500, str(out), "server_error")
        return self._by_request[out.request_id], out

    def _record(self, c: _Choice, out: StepOutput) -> tuple[list[int], list[float], list[dict]]:
        """Add a step's tokens to the choice; returns the ones to report in logprobs (the stop token
        that ended generation is not part of the text, so it is not shown)."""
        ids = list(out.token_ids)
        lps = list(out.logprobs or [])
        tops = list(out.top_logprobs or [])
        c.token_ids += ids
        if out.finished and out.result.finish_reason == "stop" and ids and ids[-1] in self.stop_ids:
            ids, lps, tops = ids[:-1], lps[:-1], tops[:-1]
        c.logprobs += lps
        c.top_logprobs += tops
        return ids, lps, tops

    def _flagged(self, text: str) -> bool:
        return self.safety is not None and not self.safety.check(text).safe

    # ------------------------------------------------------------------ one response object
    async def collect(self, disconnected) -> dict[str, Any] | None:
        """Wait for every choice and return the response object; `disconnected` is an async
        callable: when the client has gone away, abort its choices and return None."""
        watcher = asyncio.create_task(self._watch(disconnected)) if not self.done else None
        try:
            while not self.done:
                item = await self._next()
                if item is None:
                    return None
                c, out = item
                self._record(c, out)
                if out.finished:
                    c.text, c.finish_reason = out.result.text, out.result.finish_reason
                    if self._flagged(c.text):
                        c.text, c.finish_reason = self.safety.refusal, "content_filter"
        finally:
            if watcher is not None:
                watcher.cancel()
            if not self.done:
                self.abort()
        return {"id": self.id, "object": self.format.object, "created": self.created, "model": self.model_name,
                "choices": [self.format.choice(c, self._choice_logprobs(c)) for c in self.choices],
                "usage": self.usage()}

    async def _watch(self, disconnected) -> None:
        # A non-streaming response learns of a client gone only by asking; tokens keep coming meanwhile.
        while not await disconnected():
            await asyncio.sleep(DISCONNECT_POLL_S)
        self.queue.put_nowait(_GONE)

    def _choice_logprobs(self, c: _Choice) -> dict | None:
        if not self.want_logprobs:
            return None
        n = len(c.logprobs)
        return self.format.logprobs(c.token_ids[:n], c.logprobs, c.top_logprobs)

    def usage(self) -> dict[str, int]:
        # A prompt shared by n choices is counted once, as OpenAI does.
        prompt = sum(c.prompt_tokens for c in self.choices[::self.n])
        completion = sum(len(c.token_ids) for c in self.choices)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    # ------------------------------------------------------------------ server-sent events
    async def events(self) -> AsyncIterator[str]:
        """The stream: SSE `data:` lines. Cancelled when the client disconnects (Starlette cancels
        the response), which aborts what is still generating."""
        try:
            for c in self.choices:
                first = self.format.first_delta(c.index)
                if first is not None:
                    yield self._chunk([first])
            for c in self.choices:  # refused up front: the refusal, then the finish
                if c.request_id is None:
                    yield self._chunk([self.format.delta(c.index, c.text, None, None)])
                    yield self._chunk([self.format.delta(c.index, "", None, c.finish_reason)])
            offsets = {c.index: 0 for c in self.choices}
            while not self.done:
                try:
                    c, out = await self._next()
                except APIError as exc:
                    yield f"data: {json.dumps(exc.body())}\n\n"
                    return
                ids, lps, tops = self._record(c, out)
                delta = out.delta
                if delta and self._flagged(c.text + delta):
                    self.loop.abort([c.request_id])
                    c.finish_reason = "content_filter"
                    yield self._chunk([self.format.delta(c.index, "", None, c.finish_reason)])
                    continue
                c.text += delta
                logprobs = self.format.logprobs(ids, lps, tops, offsets[c.index]) if self.want_logprobs else None
                offsets[c.index] += sum(len(self.format.token_text(t)[0]) for t in ids) if logprobs else 0
                if delta or (logprobs and ids):
                    yield self._chunk([self.format.delta(c.index, delta, logprobs, None)])
                if out.finished:
                    c.finish_reason = out.result.finish_reason
                    yield self._chunk([self.format.delta(c.index, "", None, c.finish_reason)])
            if self.include_usage:
                yield self._chunk([], usage=self.usage())
            yield "data: [DONE]\n\n"
        finally:
            if not self.done:
                self.abort()

    def _chunk(self, choices: list[dict], usage: dict | None = None) -> str:
        body = {"id": self.id, "object": self.format.chunk_object, "created": self.created, "model": self.model_name,
                "choices": choices}
        if self.include_usage:
            body["usage"] = usage
        return f"data: {json.dumps(body, ensure_ascii=False, separators=(',', ':'))}\n\n"
