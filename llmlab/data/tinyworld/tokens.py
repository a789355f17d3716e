"""How tinyworld counts tokens before any tokenizer exists, and how --tokens sizes are written.

A "token" here is a word or a punctuation mark: the matches of `\\w+|[^\\w\\s]` ("Mia's dog."
is 5 tokens: Mia ' s dog .). A byte-level BPE trained on tinyworld text produces a similar count;
bench/tinyworld_speed.py measures the ratio.
"""

from __future__ import annotations

import re

from llmlab.units import parse_positive_int

TOKEN_PATTERN = r"\w+|[^\w\s]"
_TOKEN = re.compile(TOKEN_PATTERN)


def count_tokens(text: str) -> int:
    """Approximate tokens in `text`: words plus punctuation marks."""
    return len(_TOKEN.findall(text))


def parse_token_count(value: str | int | float) -> int:
    """'50M' -> 50_000_000, '2.5M', '200k', '1000000', '1e6', '1_000_000'; must be positive."""
    return parse_positive_int(value, "token count")
