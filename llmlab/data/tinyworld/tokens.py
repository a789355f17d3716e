"""How tinyworld counts tokens before any tokenizer exists, and how --tokens sizes are written.

A "token" here is a word or a punctuation mark: the matches of `\\w+|[^\\w\\s]` ("Mia's dog."
is 5 tokens: Mia ' s dog .). A byte-level BPE trained on tinyworld text produces a similar count;
bench/tinyworld_speed.py measures the ratio.
"""

from __future__ import annotations

import re

from llmlab.errors import ConfigError

TOKEN_PATTERN = r"\w+|[^\w\s]"
_TOKEN = re.compile(TOKEN_PATTERN)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(?:e(\d+))?\s*([kKmMbBgG]?)\s*$")
_SCALE = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


def count_tokens(text: str) -> int:
    """Approximate tokens in `text`: words plus punctuation marks."""
    return len(_TOKEN.findall(text))


def parse_token_count(value: str | int | float) -> int:
    """'50M' -> 50_000_000, '2.5M', '200k', '1000000', '1e6', '1_000_000'; must be positive."""
    if isinstance(value, bool):
        raise ConfigError(f"invalid token count {value!r}")
    if isinstance(value, (int, float)):
        n = value
    elif value.strip().startswith("-"):
        raise ConfigError(f"token count must be positive, got {value!r}")
    else:
        m = _SIZE.match(value.replace("_", "").replace(",", ""))
        if not m:
            raise ConfigError(f"invalid token count {value!r}: use a number like 2000000, 200k, 2.5M or 1e6")
        n = float(m.group(1)) * 10 ** int(m.group(2) or 0) * _SCALE[m.group(3).lower()]
    if n != n or n <= 0:
        raise ConfigError(f"token count must be positive, got {value!r}")
    if n > 10**12:
        raise ConfigError(f"token count {value!r} is too large (the limit is 1e12)")
    return int(round(n))
