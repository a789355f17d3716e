"""The generation engine: KV-cached, batched, streaming decoding with per-request settings.

Everything that produces tokens in llmlab goes through `Engine` (chat, prompting, content,
evaluation, PPO rollouts, the server). Its core is a scheduler API built for continuous batching:

    engine = Engine(model, tokenizer)
    rid = engine.add_request("Once upon a time", GenerationConfig(max_new_tokens=50))   # any thread
    while engine.has_unfinished():
        for out in engine.step():          # one prefill or one decode step for the whole batch
            print(out.request_id, out.delta, out.finished)

Requests can be added and aborted at any time; `step()` admits waiting requests into the running
batch (a prefill), otherwise advances every running sequence by one token (a decode step), and
drops finished rows. `generate()` and `stream()` are that loop, packaged.

How the batch is laid out: every running sequence is one row of one preallocated KV cache with a
shared write pointer L. Rows are right-aligned at L, so shorter sequences are left-padded; a 2-D
mask marks each row's padding, and each row carries its own position ids, so a row's tokens see
exactly what they would see alone (tested token for token). A new request is prefilled on its own
and its keys/values are copied into the batch right-aligned at the pointer; a finished row is
removed with `KVCache.select`. When the pointer reaches the cache's end, columns that are padding
in every row are dropped (compaction), or the cache grows up to the context length. Sliding-window
layers keep only their last W columns (rolling buffers), so their memory stays flat however long
the generation; copies between caches go through `KVCache.copy_from`, which knows both layouts.
"""

from __future__ import annotations

import itertools
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import torch

from llmlab.errors import ConfigError
from llmlab.infer.detokenize import TextAssembler
from llmlab.infer.params import GenerationConfig, checkpoint_defaults, resolve_config
from llmlab.infer.sampling import BatchSampler, SamplerRow
from llmlab.model.kv_cache import KVCache


# ---------------------------------------------------------------------------- results
@dataclass
class GenerationResult:
    """One finished request."""

    text: str  # the continuation only, decoded from the new tokens, stop string excluded
    token_ids: list[int]  # generated ids (including the stop token that ended generation, if any)
    finish_reason: str  # "stop" (stop token or string), "length" (budget or context full), "abort"
    stop_reason: int | str | None = None  # the stop token id or stop string that matched
    prompt_token_ids: list[int] = field(default_factory=list)  # as fed to the model (after truncation)
    prompt_truncated: int = 0  # prompt tokens dropped from the left (truncation="left")
    logprobs: list[float] | None = None  # log p(token) per generated token, raw model distribution
    top_logprobs: list[dict[int, float]] | None = None  # per position: token id -> log p
    request_id: str = ""
    time_to_first_token: float | None = None  # seconds from add_request to the first token
    time_total: float | None = None

    @property
    def num_generated_tokens(self) -> int:
        return len(self.token_ids)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "text": self.text, "token_ids": self.token_ids, "finish_reason": self.finish_reason,
            "stop_reason": self.stop_reason, "prompt_tokens": len(self.prompt_token_ids),
            "completion_tokens": len(self.token_ids),
        }
        if self.prompt_truncated:
            out["prompt_truncated"] = self.prompt_truncated
        if self.logprobs is not None:
            out["logprobs"] = self.logprobs
        if self.top_logprobs is not None:
            out["top_logprobs"] = [{str(k): v for k, v in d.items()} for d in self.top_logprobs]
        return out


@dataclass
class StepOutput:
    """What one `step()` produced for one request."""

    request_id: str
    delta: str  # new text safe to show (never half a character, never a possible stop-string start)
    token_ids: list[int]  # tokens generated in this step
    finished: bool = False
    result: GenerationResult | None = None  # set when finished
    # Per token of `token_ids`, when the request asked for them (a server streams them with the text).
    logprobs: list[float] | None = None
    top_logprobs: list[dict[int, float]] | None = None


class TextStream:
    """The text pieces of one streamed request (iterate once). `.result` is its GenerationResult
    once the pieces are exhausted, None until then; `close()` (or dropping the stream early) aborts
    the request. `result = yield from engine.stream(...)` works too."""

    def __init__(self, pieces: Iterator[str]):
        self._pieces = pieces
        self.result: GenerationResult | None = None

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except StopIteration as stop:
            if stop.value is not None:  # the generator's return value, raised once
                self.result = stop.value
            raise

    def close(self) -> None:
        self._pieces.close()


# ---------------------------------------------------------------------------- requests
class _Request:
    __slots__ = (
        "id", "prompt_ids", "config", "max_new", "stop_ids", "min_new", "output", "text", "sampler_row",
        "logprobs", "top_logprobs", "finish_reason", "stop_reason", "truncated", "t_arrival", "t_first",
        "needs_text",
    )

    def __init__(self, rid, prompt_ids, config, max_new, stop_ids, truncated, tokenizer, device, stream):
        self.id = rid
        self.prompt_ids = prompt_ids
        self.config = config
        self.max_new = max_new
        self.stop_ids = stop_ids
        self.min_new = config.min_new_tokens
        self.output: list[int] = []
        # Text is assembled while generating only when someone watches it (a stream) or it can
        # stop generation (stop strings); otherwise it is decoded once at the end.
        self.needs_text = tokenizer is not None and (stream or bool(config.stop))
        self.text = (
            TextAssembler(tokenizer, prompt_ids, config.stop, config.skip_special_tokens) if self.needs_text else None
        )
        self.sampler_row = SamplerRow.from_config(config, device)
        self.logprobs = [] if config.logprobs else None
        self.top_logprobs = [] if config.top_logprobs else None
        self.finish_reason: str | None = None
        self.stop_reason = None
        self.truncated = truncated
        self.t_arrival = time.perf_counter()
        self.t_first: float | None = None


# ---------------------------------------------------------------------------- the running batch
class _Batch:
    """Rows of running requests sharing one KV cache (see the module docstring for the layout)."""

    def __init__(self, requests, cache, mask, positions, tokens, sampler):
        self.requests: list[_Request] = requests
        self.cache: KVCache = cache
        self.mask = mask  # bool [B, capacity]: False on each row's left padding, True elsewhere
        self.positions = positions  # long [B, 1]: position id of each row's pending token
        self.tokens = tokens  # long [B, 1]: each row's pending token (sampled, not yet in the cache)
        self.sampler: BatchSampler = sampler
        self.refresh()

    def refresh(self) -> None:
        L = self.cache.length
        # Without padding the model's own causal path (no mask at all) is exact and fastest.
        self.padded = bool(L > 0 and not bool(self.mask[:, :L].all()))

    def __len__(self) -> int:
        return len(self.requests)


class Engine:
    """Batched, KV-cached generation over one model (see the module docstring)."""

    def __init__(self, model, tokenizer=None, *, max_batch_size: int = 32, default_config: GenerationConfig | None = None):
        if max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.context_length = model.config.context_length
        self.vocab_size = model.config.vocab_size
        self.device = next(model.parameters()).device
        self.default_config = resolve_config(model, default_config)
        self._waiting: deque[_Request] = deque()
        self._aborted: set[str] = set()
        self._lock = threading.Lock()  # add_request/abort may come from other threads than step()
        self._ids = itertools.count()
        self._batch: _Batch | None = None

    # ------------------------------------------------------------------ configuration
    def make_config(self, config: GenerationConfig | None = None, **overrides: Any) -> GenerationConfig:
        """This engine's defaults (library < checkpoint < engine default_config) with overrides."""
        base = config if config is not None else self.default_config
        return resolve_config(self.model, base, **overrides)

    def encode(self, prompt: str | Sequence[int]) -> list[int]:
        if isinstance(prompt, str):
            if self.tokenizer is None:
                raise ConfigError("this engine has no tokenizer; pass prompts as lists of token ids")
            return self.tokenizer.encode(prompt)
        ids = [int(t) for t in (prompt.tolist() if hasattr(prompt, "tolist") else prompt)]
        bad = [t for t in ids if not 0 <= t < self.vocab_size]
        if bad:
            raise ConfigError(f"prompt token id {bad[0]} is outside the model's vocabulary (0..{self.vocab_size - 1})")
        return ids

    # ------------------------------------------------------------------ scheduler API
    def add_request(
        self,
        prompt: str | Sequence[int],
        config: GenerationConfig | None = None,
        *,
        request_id: str | None = None,
        stream: bool = False,
        **overrides: Any,
    ) -> str:
        """Queue a request; it joins the running batch at the next `step()`. Thread-safe.

        stream=True assembles text while generating, so each StepOutput carries a `delta`.
        """
        request = self._new_request(prompt, self.make_config(config, **overrides), request_id, stream)
        self._enqueue([request])
        return request.id

    def _new_request(self, prompt, config: GenerationConfig, request_id: str | None, stream: bool) -> _Request:
        if self.tokenizer is None and (config.stop or stream):
            raise ConfigError("stop strings and streaming need text: create the Engine with a tokenizer")
        ids = self.encode(prompt)
        if not ids:
            raise ConfigError("the prompt is empty; give at least one token (e.g. the end-of-text token)")
        ids, truncated, max_new = self._fit(ids, config)
        rid = request_id if request_id is not None else f"req-{next(self._ids)}"
        stop_ids = config.stop_token_set(self.tokenizer)
        return _Request(rid, ids, config, max_new, stop_ids, truncated, self.tokenizer, self.device, stream)

    def _enqueue(self, requests: list[_Request]) -> None:
        with self._lock:
            self._waiting.extend(requests)

    def abort(self, request_id: str) -> None:
        """Stop a request; its final StepOutput (finish_reason "abort") comes from the next step()."""
        with self._lock:
            self._aborted.add(request_id)

    def has_unfinished(self) -> bool:
        return bool(self._waiting) or self._batch is not None

    @property
    def num_running(self) -> int:
        return len(self._batch) if self._batch is not None else 0

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def cache_bytes(self) -> int:
        """Bytes held by the running batch's KV cache (sliding-window layers keep only their window)."""
        return self._batch.cache.nbytes() if self._batch is not None else 0

    @torch.inference_mode()
    def step(self) -> list[StepOutput]:
        """Admit waiting requests (one prefill) if there are any and room, else one decode step."""
        outputs = self._apply_aborts()
        room = self.max_batch_size - self.num_running
        if self._waiting and room > 0:
            with self._lock:
                admitted = [self._waiting.popleft() for _ in range(min(room, len(self._waiting)))]
            outputs += self._prefill(admitted)
        elif self._batch is not None:
            outputs += self._decode()
        return outputs

    # ------------------------------------------------------------------ convenience loops
    def generate(
        self,
        prompts: str | Sequence[int] | Sequence[str | Sequence[int]],
        config: GenerationConfig | None = None,
        **overrides: Any,
    ) -> GenerationResult | list[GenerationResult]:
        """Generate for one prompt (returns a result) or many (a list, in order), batched.

        A prompt is a string or a list of token ids. This drives `step()` itself, so use it when
        you own the engine (a server drives `step()` from one loop instead).
        """
        single = isinstance(prompts, str) or (
            isinstance(prompts, (list, tuple)) and prompts and isinstance(prompts[0], int)
        ) or (hasattr(prompts, "dim") and prompts.dim() == 1)
        batch = [prompts] if single else list(prompts)
        config = self.make_config(config, **overrides)
        # Check every prompt before queueing any, so a bad one leaves nothing half-submitted.
        requests = [self._new_request(p, config, None, False) for p in batch]
        self._enqueue(requests)
        results = self.wait(r.id for r in requests)
        ordered = [results[r.id] for r in requests]
        return ordered[0] if single else ordered

    def stream(
        self, prompt: str | Sequence[int], config: GenerationConfig | None = None, **overrides: Any
    ) -> TextStream:
        """Text pieces as they are generated (they concatenate to the final text), as a TextStream:
        iterate it, then read its `.result`. The request is queued when iteration starts."""
        return TextStream(self._pieces(prompt, config, overrides))

    def _pieces(self, prompt, config: GenerationConfig | None, overrides: dict[str, Any]) -> Iterator[str]:
        rid = self.add_request(prompt, config, stream=True, **overrides)
        result = None
        try:
            while True:
                for out in self.step():
                    if out.request_id != rid:
                        continue
                    if out.delta:
                        yield out.delta
                    if out.finished:
                        result = out.result
                        return result
        finally:
            if result is None:  # the consumer stopped early (break, Ctrl-C): free the row
                self.abort(rid)
                self.wait({rid})

    def wait(self, ids: Iterable[str]) -> dict[str, GenerationResult]:
        """Step until the requests `ids` have finished; their results by id (others keep running)."""
        ids = set(ids)
        results: dict[str, GenerationResult] = {}
        while ids - results.keys():
            if not self.has_unfinished():
                raise RuntimeError("engine stopped before all requests finished")  # a bug, not user input
            for out in self.step():
                if out.finished and out.request_id in ids:
                    results[out.request_id] = out.result
        return results

    # ------------------------------------------------------------------ internals: admission
    def _fit(self, ids: list[int], config: GenerationConfig) -> tuple[list[int], int, int]:
        """Apply the context limit: returns (prompt ids, tokens dropped, token budget)."""
        C = self.context_length
        budget = config.budget(len(ids))
        if config.truncation == "left":
            if budget >= C:
                raise ConfigError(
                    f"max_new_tokens={budget} leaves no room for a prompt in the context of {C} tokens"
                )
            keep = C - budget
            if len(ids) > keep:
                dropped = len(ids) - keep
                warnings.warn(
                    f"prompt of {len(ids)} tokens truncated from the left to {keep} so that {budget} new tokens "
                    f"fit the context of {C}", stacklevel=3,
                )
                return ids[-keep:], dropped, budget
            return ids, 0, budget
        if len(ids) >= C:
            raise ConfigError(
                f"the prompt has {len(ids)} tokens but the model's context is {C} (room is needed for at least "
                f"one new token); shorten it or pass truncation='left' (--truncation left)"
            )
        # Prompt + budget may exceed the context: generation then stops at the context's end
        # with finish_reason "length".
        return ids, 0, budget

    def _apply_aborts(self) -> list[StepOutput]:
        if not self._aborted:
            return []
        with self._lock:
            aborted, self._aborted = self._aborted, set()
            waiting = [r for r in self._waiting if r.id in aborted]
            self._waiting = deque(r for r in self._waiting if r.id not in aborted)
        outputs = []
        for r in waiting:
            r.finish_reason = "abort"
            outputs.append(self._finish_output(r, []))
        if self._batch is not None:
            rows = [i for i, r in enumerate(self._batch.requests) if r.id in aborted]
            for i in rows:
                r = self._batch.requests[i]
                r.finish_reason = "abort"
                outputs.append(self._finish_output(r, []))
            if rows:
                self._remove_rows(set(rows))
        return outputs

    def _prefill(self, requests: list[_Request]) -> list[StepOutput]:
        """Run the prompts of `requests` (left-padded, one forward), sample each first token, and
        merge the rows that continue into the running batch."""
        n = len(requests)
        P = max(len(r.prompt_ids) for r in requests)
        ids = torch.zeros(n, P, dtype=torch.long)
        am = torch.zeros(n, P, dtype=torch.bool)
        for i, r in enumerate(requests):
            k = len(r.prompt_ids)
            ids[i, P - k:] = torch.tensor(r.prompt_ids)
            am[i, P - k:] = True
        ids, am = ids.to(self.device), am.to(self.device)
        padded = not bool(am.all())
        need = max(min(self.context_length, len(r.prompt_ids) + r.max_new) - len(r.prompt_ids) for r in requests)
        cache = self.model.new_kv_cache(n, min(self.context_length, P + need))
        logits = self.model(
            ids, attention_mask=am.long() if padded else None, kv_cache=cache, num_logits_to_keep=1,
        ).logits[:, -1]
        sampler = BatchSampler([r.sampler_row for r in requests], self.vocab_size, self.device,
                               prompts=[r.prompt_ids for r in requests])
        mask = torch.ones(n, cache.max_len, dtype=torch.bool, device=self.device)
        mask[:, :P] = am
        positions = torch.tensor([[len(r.prompt_ids)] for r in requests], device=self.device)
        new = _Batch(requests, cache, mask, positions, torch.zeros(n, 1, dtype=torch.long, device=self.device), sampler)
        outputs, finished = self._sample_and_record(new, logits)
        if len(finished) == len(new):
            return outputs
        if finished:
            self._select(new, [i for i in range(len(new)) if i not in finished])
        self._batch = new if self._batch is None else self._merge(self._batch, new)
        return outputs

    def _merge(self, a: _Batch, b: _Batch) -> _Batch:
        """One batch holding a's rows then b's, right-aligned at the larger write pointer."""
        La, Lb = a.cache.length, b.cache.length
        L = max(La, Lb)
        remaining = max(r.max_new - len(r.output) for r in a.requests + b.requests)
        capacity = min(self.context_length, max(a.cache.max_len, b.cache.max_len, L + remaining))
        Ba, Bb = len(a), len(b)
        cache = self.model.new_kv_cache(Ba + Bb, capacity)
        cache.length = L
        cache.copy_from(a.cache, slice(0, Ba), L - La)
        cache.copy_from(b.cache, slice(Ba, None), L - Lb)
        mask = torch.ones(Ba + Bb, capacity, dtype=torch.bool, device=self.device)
        mask[:Ba, :L - La] = False
        mask[:Ba, L - La:L] = a.mask[:, :La]
        mask[Ba:, :L - Lb] = False
        mask[Ba:, L - Lb:L] = b.mask[:, :Lb]
        return _Batch(
            a.requests + b.requests, cache, mask, torch.cat([a.positions, b.positions]),
            torch.cat([a.tokens, b.tokens]), BatchSampler.concat(a.sampler, b.sampler),
        )

    # ------------------------------------------------------------------ internals: decoding
    def _decode(self) -> list[StepOutput]:
        batch = self._batch
        if batch.cache.length >= batch.cache.max_len:
            self._make_room(batch)
        L = batch.cache.length
        mask = batch.mask[:, None, None, :L + 1] if batch.padded else None
        logits = self.model(
            batch.tokens, attention_mask=mask, position_ids=batch.positions, kv_cache=batch.cache, num_logits_to_keep=1,
        ).logits[:, -1]
        batch.positions += 1
        outputs, finished = self._sample_and_record(batch, logits)
        if finished:
            self._remove_rows(finished)
        return outputs

    def _sample_and_record(self, batch: _Batch, logits: torch.Tensor) -> tuple[list[StepOutput], set[int]]:
        """Sample each row's next token, record it, and decide who finished."""
        suppress = None
        for i, r in enumerate(batch.requests):
            if len(r.output) < r.min_new and r.stop_ids:
                suppress = suppress or {}
                suppress[i] = r.stop_ids
        sample = batch.sampler(logits, suppress)
        batch.tokens.copy_(sample.tokens[:, None])
        tokens = sample.tokens.tolist()
        logprobs = sample.logprobs.tolist() if sample.logprobs is not None else None
        top = (sample.top_ids.tolist(), sample.top_logprobs.tolist()) if sample.top_ids is not None else None
        now = time.perf_counter()
        outputs, finished = [], set()
        for i, (r, t) in enumerate(zip(batch.requests, tokens)):
            if r.t_first is None:
                r.t_first = now
            r.output.append(t)
            if r.logprobs is not None:
                r.logprobs.append(logprobs[i])
            if r.top_logprobs is not None:
                n = r.config.top_logprobs
                r.top_logprobs.append(dict(zip(top[0][i][:n], top[1][i][:n])))
            delta = ""
            if t in r.stop_ids:
                r.finish_reason, r.stop_reason = "stop", t
            else:
                if r.text is not None:
                    delta, stopped = r.text.add(t)
                    if stopped:
                        r.finish_reason, r.stop_reason = "stop", r.text.stop_reason
                if r.finish_reason is None and (
                    len(r.output) >= r.max_new or len(r.prompt_ids) + len(r.output) >= self.context_length
                ):
                    r.finish_reason = "length"
            if r.finish_reason is not None:
                finished.add(i)
                out = self._finish_output(r, [t], delta)
            else:
                out = StepOutput(r.id, delta, [t])
            if r.logprobs is not None:
                out.logprobs = r.logprobs[-1:]
            if r.top_logprobs is not None:
                out.top_logprobs = r.top_logprobs[-1:]
            outputs.append(out)
        return outputs, finished

    def _finish_output(self, r: _Request, new_tokens: list[int], delta: str = "") -> StepOutput:
        if r.text is not None:
            delta += r.text.finish()
            text = r.text.text
        elif self.tokenizer is not None:
            ids = r.output[:-1] if r.finish_reason == "stop" and r.output and r.output[-1] in r.stop_ids else r.output
            text = self.tokenizer.decode(ids, skip_special_tokens=r.config.skip_special_tokens)
        else:
            text = ""
        now = time.perf_counter()
        result = GenerationResult(
            text=text, token_ids=list(r.output), finish_reason=r.finish_reason, stop_reason=r.stop_reason,
            prompt_token_ids=r.prompt_ids, prompt_truncated=r.truncated, logprobs=r.logprobs,
            top_logprobs=r.top_logprobs, request_id=r.id,
            time_to_first_token=(r.t_first - r.t_arrival) if r.t_first is not None else None,
            time_total=now - r.t_arrival,
        )
        return StepOutput(r.id, delta, new_tokens, finished=True, result=result)

    # ------------------------------------------------------------------ internals: batch upkeep
    def _remove_rows(self, rows: set[int]) -> None:
        batch = self._batch
        keep = [i for i in range(len(batch)) if i not in rows]
        if not keep:
            self._batch = None
            return
        self._select(batch, keep)

    @staticmethod
    def _select(batch: _Batch, keep: list[int]) -> None:
        idx = torch.tensor(keep, dtype=torch.long, device=batch.mask.device)
        batch.requests = [batch.requests[i] for i in keep]
        batch.cache.select(idx)
        batch.mask = batch.mask.index_select(0, idx)
        batch.positions = batch.positions.index_select(0, idx)
        batch.tokens = batch.tokens.index_select(0, idx)
        batch.sampler = batch.sampler.select(keep)
        batch.refresh()

    def _make_room(self, batch: _Batch) -> None:
        """The write pointer is at the cache's end: drop columns that are padding in every row,
        or grow the cache (up to the context length). Rows at the context's end have finished
        already, so one of the two always works."""
        cache, L = batch.cache, batch.cache.length
        real = batch.mask[:, :L].any(dim=0)
        shift = int(real.nonzero()[0]) if bool(real.any()) else L
        if shift > 0:
            batch.cache = cache.moved(cache.max_len, shift)  # (rolling layers' slots move too)
            batch.mask[:, :L - shift] = batch.mask[:, shift:L].clone()
            batch.mask[:, L - shift:] = True
        elif cache.max_len < self.context_length:
            capacity = min(self.context_length, 2 * cache.max_len)
            bigger = cache.moved(capacity)
            mask = torch.ones(len(batch), capacity, dtype=torch.bool, device=batch.mask.device)
            mask[:, :L] = batch.mask[:, :L]
            batch.cache, batch.mask = bigger, mask
        else:
            raise RuntimeError("KV cache full although no row reached the context length")  # invariant broken: a bug
        batch.refresh()


# ---------------------------------------------------------------------------- the lesson's function
def generate_text(
    model,
    tokenizer,
    prompt: str | Sequence[str],
    max_length: int | None = None,
    temperature: float | None = None,
    *,
    max_new_tokens: int | None = None,
    config: GenerationConfig | None = None,
    **kwargs: Any,
) -> str | list[str]:
    """Generate a continuation of `prompt` (or of each prompt in a list, batched) and return only
    the new text, decoded from the new tokens.

    max_length counts prompt + new tokens, as in Hugging Face (the lesson's generate_text passed it
    that way); prefer max_new_tokens. With neither, 100 new tokens (or the checkpoint's
    max_new_tokens). temperature defaults to the checkpoint's, else 0.7 (sampling, as in the
    lesson); 0 is greedy. Other keywords are GenerationConfig fields (top_k, top_p, min_p,
    repetition_penalty, stop, seed, ...).
    """
    batch = len(prompt) if isinstance(prompt, (list, tuple)) else 1
    engine = Engine(model, tokenizer, max_batch_size=max(1, min(batch, 64)))
    if temperature is None and config is None:
        temperature = checkpoint_defaults(model).get("temperature", 0.7)
    overrides = dict(kwargs)
    if temperature is not None:
        overrides["temperature"] = temperature
    if max_new_tokens is not None:
        overrides["max_new_tokens"] = max_new_tokens
    if max_length is not None:
        overrides["max_length"] = max_length
    result = engine.generate(prompt, config, **overrides)
    return [r.text for r in result] if isinstance(result, list) else result.text
