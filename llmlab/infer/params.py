"""Generation parameters: one dataclass, named as Hugging Face and OpenAI users know them.

Precedence, lowest first: the library defaults below, the checkpoint's `generation_config.json`
(`model.generation_config`: eos/pad ids and any sampling defaults it stores), then what the caller
passes. Every value is validated here, so a bad one fails before any compute with a one-line
`ConfigError`.

Length: `max_new_tokens` counts generated tokens only. `max_length` (Hugging Face semantics) counts
prompt + generated tokens; pass one or the other. With neither, DEFAULT_MAX_NEW_TOKENS applies.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from llmlab.errors import ConfigError

DEFAULT_MAX_NEW_TOKENS = 100  # the lesson's generate_text default (max_length=100), counted as new tokens
MAX_TOP_LOGPROBS = 20  # OpenAI's limit
TRUNCATION_MODES = ("error", "left")


@dataclass
class GenerationConfig:
    """How to decode. Greedy when `temperature == 0` or `do_sample=False`; sampling otherwise."""

    max_new_tokens: int | None = None  # tokens to generate (excluding the prompt)
    max_length: int | None = None  # prompt + generated tokens (Hugging Face); exclusive with max_new_tokens
    min_new_tokens: int = 0  # stop tokens are suppressed until this many tokens exist (stop strings still apply)
    do_sample: bool | None = None  # None: sample iff temperature > 0
    temperature: float = 1.0
    top_k: int = 0  # keep the k most likely tokens; 0 = off
    top_p: float = 1.0  # nucleus: the smallest set with probability >= top_p; 1 = off
    min_p: float = 0.0  # drop tokens less likely than min_p * p(most likely); 0 = off
    repetition_penalty: float = 1.0  # CTRL/HF: logits of tokens seen in prompt or output /= p (x p if negative)
    frequency_penalty: float = 0.0  # OpenAI: logit -= f * count in the output so far
    presence_penalty: float = 0.0  # OpenAI: logit -= p if the token occurred in the output so far
    stop: list[str] = field(default_factory=list)  # strings that end the text (excluded from it)
    stop_token_ids: list[int] = field(default_factory=list)  # extra token ids that end generation
    ignore_eos: bool = False  # do not stop at end-of-text / end-of-turn (benchmarks)
    seed: int | None = None  # per-request sampling seed: same seed, same sample, whatever the batch
    logprobs: bool = False  # return each generated token's log-probability (raw model distribution)
    top_logprobs: int = 0  # ... and that many most likely alternatives per position
    truncation: str = "error"  # prompt longer than the context allows: "error" or "left" (warn, drop oldest)
    skip_special_tokens: bool = True  # when decoding the text
    eos_token_id: int | list[int] | None = None  # usually from the checkpoint
    pad_token_id: int | None = None  # usually from the checkpoint (unused by the engine: it masks padding)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ derived
    @property
    def greedy(self) -> bool:
        if self.do_sample is None:
            return self.temperature == 0
        return not self.do_sample

    def stop_token_set(self, tokenizer=None) -> frozenset[int]:
        """Token ids that end generation: eos ids (checkpoint and tokenizer) unless ignore_eos,
        plus `stop_token_ids`."""
        ids = set(self.stop_token_ids)
        if not self.ignore_eos:
            eos = self.eos_token_id
            ids.update(eos if isinstance(eos, list) else ([] if eos is None else [eos]))
            if tokenizer is not None:
                ids.update(getattr(tokenizer, "stop_token_ids", None) or [])
        return frozenset(ids)

    def budget(self, prompt_len: int) -> int:
        """Tokens this request may generate (before the context limit is applied)."""
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        if self.max_length is not None:
            room = self.max_length - prompt_len
            if room < 1:
                raise ConfigError(
                    f"the prompt has {prompt_len} tokens but max_length={self.max_length} (max_length counts the "
                    f"prompt too, as in Hugging Face); pass max_new_tokens instead"
                )
            return room
        return DEFAULT_MAX_NEW_TOKENS

    # ------------------------------------------------------------------ building
    def replace(self, **changes: Any) -> "GenerationConfig":
        """A copy with `changes` applied (validated; unknown names rejected). Setting one of
        max_new_tokens / max_length clears the other, so a caller's choice beats a default's."""
        changes = {k: v for k, v in changes.items()}
        check_names(changes)
        data = dataclasses.asdict(self)
        if changes.get("max_new_tokens") is not None and "max_length" not in changes:
            data["max_length"] = None
        if changes.get("max_length") is not None and "max_new_tokens" not in changes:
            data["max_new_tokens"] = None
        data.update(changes)
        return GenerationConfig(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        def bad(msg: str) -> None:
            raise ConfigError(f"invalid generation parameter: {msg}")

        def number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                bad(f"{name} must be a finite number, got {value!r}")
            return float(value)

        def integer(name: str, minimum: int, optional: bool = False) -> None:
            value = getattr(self, name)
            if value is None and optional:
                return
            if isinstance(value, bool) or not isinstance(value, int):
                bad(f"{name} must be an integer, got {value!r}")
            if value < minimum:
                bad(f"{name} must be >= {minimum}, got {value}")

        # Normalise the forms people commonly pass before checking.
        if self.top_k is None:
            self.top_k = 0
        if self.top_p is None:
            self.top_p = 1.0
        if self.min_p is None:
            self.min_p = 0.0
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        if isinstance(self.stop_token_ids, int):
            self.stop_token_ids = [self.stop_token_ids]
        self.stop_token_ids = list(self.stop_token_ids or [])

        integer("max_new_tokens", 1, optional=True)
        integer("max_length", 1, optional=True)
        if self.max_new_tokens is not None and self.max_length is not None:
            bad("pass max_new_tokens or max_length, not both (max_length counts the prompt too)")
        integer("min_new_tokens", 0)
        if self.max_new_tokens is not None and self.min_new_tokens > self.max_new_tokens:
            bad(f"min_new_tokens ({self.min_new_tokens}) exceeds max_new_tokens ({self.max_new_tokens})")
        if self.do_sample is not None and not isinstance(self.do_sample, bool):
            bad(f"do_sample must be True, False or None, got {self.do_sample!r}")
        temperature = number("temperature")
        if temperature < 0:
            bad(f"temperature must be >= 0 (0 means greedy), got {temperature}")
        if self.do_sample is True and temperature == 0:
            bad("do_sample=True needs temperature > 0 (temperature 0 means greedy)")
        integer("top_k", 0)
        top_p = number("top_p")
        if not 0 < top_p <= 1:
            bad(f"top_p must be in (0, 1], got {top_p}")
        min_p = number("min_p")
        if not 0 <= min_p <= 1:
            bad(f"min_p must be in [0, 1], got {min_p}")
        if number("repetition_penalty") <= 0:
            bad(f"repetition_penalty must be > 0 (1 = off), got {self.repetition_penalty}")
        for name in ("frequency_penalty", "presence_penalty"):
            if not -2 <= number(name) <= 2:
                bad(f"{name} must be in [-2, 2] (as in the OpenAI API), got {getattr(self, name)}")
        for s in self.stop:
            if not isinstance(s, str) or not s:
                bad(f"stop must be non-empty strings, got {s!r}")
        for t in self.stop_token_ids:
            if isinstance(t, bool) or not isinstance(t, int) or t < 0:
                bad(f"stop_token_ids must be non-negative integers, got {t!r}")
        integer("seed", 0, optional=True)
        integer("top_logprobs", 0)
        if self.top_logprobs > MAX_TOP_LOGPROBS:
            bad(f"top_logprobs must be <= {MAX_TOP_LOGPROBS}, got {self.top_logprobs}")
        if self.top_logprobs:
            self.logprobs = True
        if self.truncation not in TRUNCATION_MODES:
            bad(f"truncation must be one of {TRUNCATION_MODES}, got {self.truncation!r}")


FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(GenerationConfig))


def check_names(names: Iterable[str]) -> None:
    for name in names:
        if name not in FIELD_NAMES:
            close = difflib.get_close_matches(name, sorted(FIELD_NAMES), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown generation parameter {name!r}{hint}")


def checkpoint_defaults(model) -> dict[str, Any]:
    """The fields of the checkpoint's generation_config.json that we understand (others, such as
    `transformers_version`, are ignored: it is a file, not user input). `max_length` is ignored
    too: imported Hugging Face configs often set it to the context length (Llama-2: 4096), which
    would turn every call without a budget into a context-filling one."""
    stored = getattr(model, "generation_config", None) or {}
    return {k: v for k, v in stored.items() if k in FIELD_NAMES and k != "max_length" and v is not None}


def resolve_config(model, config: GenerationConfig | None = None, **overrides: Any) -> GenerationConfig:
    """Library defaults < checkpoint defaults < `config` < keyword overrides."""
    check_names(overrides)
    if config is None:
        try:
            config = GenerationConfig().replace(**checkpoint_defaults(model))
        except ConfigError as exc:
            raise ConfigError(f"the checkpoint's generation_config.json: {exc}") from None
    elif not isinstance(config, GenerationConfig):
        raise ConfigError(f"config must be a GenerationConfig, got {type(config).__name__}")
    else:
        # An explicit config still inherits the checkpoint's eos/pad ids when it has none.
        fill = {k: v for k, v in checkpoint_defaults(model).items()
                if k in ("eos_token_id", "pad_token_id") and getattr(config, k) is None}
        if fill:
            config = config.replace(**fill)
    return config.replace(**overrides) if overrides else config
