"""The OpenAI wire format: request bodies (validated by pydantic, strictly typed as OpenAI's API
is), how they map to the engine's GenerationConfig, and the logprobs objects of responses.

Sampling fields map one to one onto GenerationConfig, which checks their ranges (one place for
that rule, shared with the CLI and the library). llmlab's own fields (`top_k`, `min_p`,
`repetition_penalty`, `ignore_eos`, as vLLM names them) come as extra body fields: the openai
client sends them with `extra_body={...}`.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from llmlab.serve.errors import bad_request

COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions (chat has none: the context)


class _Body(BaseModel):
    # strict: "0.7" is not a temperature, true is not a count; unknown fields (user, metadata,
    # store, ...) are accepted and ignored, as OpenAI-compatible servers do.
    model_config = ConfigDict(strict=True, extra="ignore")


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampling(_Body):
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=128)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    stop: Union[str, list[str], None] = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    # llmlab's own (extra_body)
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    ignore_eos: bool = False
    # Asked for but not provided: rejected rather than silently ignored.
    logit_bias: dict[str, float] | None = None

    def overrides(self, max_tokens: int) -> dict[str, Any]:
        """GenerationConfig fields for this request (only those given: the checkpoint's
        generation_config supplies the rest)."""
        if self.logit_bias:
            raise bad_request("logit_bias is not supported by llmlab serve", "logit_bias")
        if self.stream_options is not None and not self.stream:
            raise bad_request("stream_options is only allowed when stream is true", "stream_options")
        out: dict[str, Any] = {"max_new_tokens": max_tokens}
        for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", "top_k", "min_p",
                     "repetition_penalty"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.stop is not None:
            out["stop"] = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        if self.ignore_eos:
            out["ignore_eos"] = True
        return out

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[TextPart], None] = None

    def text(self) -> str:
        if self.content is None:
            return ""
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = None
    tools: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    def generation_overrides(self, prompt_len: int, context: int) -> dict[str, Any]:
        if self.tools:
            raise bad_request("tools are not supported by llmlab serve", "tools")
        if self.response_format and self.response_format.get("type") != "text":
            raise bad_request("response_format other than text is not supported by llmlab serve", "response_format")
        if self.top_logprobs is not None and not self.logprobs:
            raise bad_request("top_logprobs needs logprobs to be true", "top_logprobs")
        limit = self.max_completion_tokens or self.max_tokens
        out = self.overrides(limit if limit is not None else max(1, context - prompt_len))
        if self.logprobs:
            out["logprobs"] = True
            out["top_logprobs"] = self.top_logprobs or 0
        return out

    def chat_messages(self) -> list[dict[str, str]]:
        # "developer" is OpenAI's newer name for the system role.
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]


class CompletionRequest(_Sampling):
    prompt: Union[str, list[str], list[int], list[list[int]]]
    logprobs: int | None = Field(None, ge=0)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    def generation_overrides(self) -> dict[str, Any]:
        if self.echo:
            raise bad_request("echo is not supported by llmlab serve", "echo")
        if self.suffix:
            raise bad_request("suffix is not supported by llmlab serve", "suffix")
        if self.best_of not in (None, self.n):
            raise bad_request("best_of is not supported by llmlab serve (use n)", "best_of")
        out = self.overrides(self.max_tokens if self.max_tokens is not None else COMPLETIONS_DEFAULT_MAX_TOKENS)
        if self.logprobs is not None:
            out["logprobs"] = True
            out["top_logprobs"] = self.logprobs
        return out

    def prompts(self) -> list[str | list[int]]:
        """The batch of prompts: a string, a list of strings, token ids, or lists of token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if not p:
            raise bad_request("prompt must not be empty", "prompt")
        return [p] if isinstance(p[0], int) else list(p)


# ---------------------------------------------------------------------------- logprobs in responses
class TokenText:
    """Each token id's text and UTF-8 bytes, as logprobs objects show them (cached per id): a
    byte-level BPE token that holds part of a character has its true bytes and a text with U+FFFD."""

    def __init__(self, tokenizer):
        from llmlab.data.token_bytes import byte_level_decoder

        self.tokenizer = tokenizer
        self.special = set(tokenizer.all_special_ids)
        self.decoder = byte_level_decoder()
        self.cache: dict[int, tuple[str, list[int]]] = {}

    def __call__(self, token_id: int) -> tuple[str, list[int]]:
        if token_id not in self.cache:
            piece = self.tokenizer.id_to_token(token_id)
            if piece is not None and token_id not in self.special and all(c in self.decoder for c in piece):
                raw = bytes(self.decoder[c] for c in piece)
            elif piece is not None and token_id in self.special:
                raw = piece.encode()
            else:  # other vocabularies (SentencePiece): the decoded text
                raw = self.tokenizer.decode([token_id]).encode()
            self.cache[token_id] = (raw.decode("utf-8", errors="replace"), list(raw))
        return self.cache[token_id]

    def chat_entries(self, token_ids, logprobs, top_logprobs) -> list[dict[str, Any]]:
        """`choice.logprobs.content` of a chat completion (or of one streamed chunk)."""
        out = []
        for i, (t, lp) in enumerate(zip(token_ids, logprobs)):
            text, raw = self(t)
            top = []
            for tid, tlp in sorted((top_logprobs[i] if top_logprobs else {}).items(), key=lambda kv: -kv[1]):
                ttext, traw = self(tid)
                top.append({"token": ttext, "logprob": tlp, "bytes": traw})
            out.append({"token": text, "logprob": lp, "bytes": raw, "top_logprobs": top})
        return out

    def completion_logprobs(self, token_ids, logprobs, top_logprobs, offset: int = 0) -> dict[str, Any]:
        """`choice.logprobs` of a (legacy) completion: parallel lists, text offsets in the completion."""
        tokens, offsets = [], []
        for t in token_ids:
            text, _ = self(t)
            tokens.append(text)
            offsets.append(offset)
            offset += len(text)
        top = None
        if top_logprobs is not None:
            top = [{self(tid)[0]: lp for tid, lp in sorted(d.items(), key=lambda kv: -kv[1])} for d in top_logprobs]
        return {"tokens": tokens, "token_logprobs": list(logprobs), "top_logprobs": top, "text_offset": offsets}
