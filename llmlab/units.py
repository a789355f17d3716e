"""Counts as people write them: one parser ("20M", "1.4T", "5.76e23") and the formatters of numbers
for people ("125M"; `format_cell`, how every table shows a value, in the terminal and in HTML).

A foundation module (imports nothing from llmlab but errors), so tinyworld, the CLI, training
configs and the scaling laws all read `--tokens 20M` and `--flops 5.76e23` the same way.
"""

from __future__ import annotations

import re
from typing import Any

from llmlab.errors import ConfigError

# k/M/B/T/P as in papers ("70B" parameters, "1.4T" tokens); G is accepted as a synonym of B.
SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}
_COUNT = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(?:e([+-]?\d+))?([kmbgtp]?)$", re.IGNORECASE)


def parse_count(value: Any, what: str = "count", example: str = "125M, 70B, 1.4T, 5.76e23") -> float:
    """125e6, "125M", "2.5m", "70B", "1.4T", "5.76e23", "1_000_000" -> a non-negative float."""
    if isinstance(value, bool):
        raise ConfigError(f"invalid {what} {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().replace("_", "").replace(",", "")
    if text.startswith("-"):
        raise ConfigError(f"{what} must be positive, got {value!r}")
    match = _COUNT.match(text.removeprefix("+"))
    if not match:
        raise ConfigError(f"invalid {what} {value!r}: not a number (examples: {example})")
    mantissa, exponent, suffix = match.groups()
    return float(mantissa) * 10.0 ** int(exponent or 0) * SUFFIXES[suffix.lower()]


def parse_positive_int(value: Any, what: str = "count", maximum: float = 1e12,
                       example: str = "2000000, 200k, 2.5M or 1e6") -> int:
    """A positive whole count (token budgets): parse_count, then range-checked and rounded."""
    n = parse_count(value, what, example)
    if n != n or round(n) < 1:
        raise ConfigError(f"{what} must be positive, got {value!r}")
    if n > maximum:
        raise ConfigError(f"{what} {value!r} is too large (the limit is {maximum:g})")
    return int(round(n))


def human_count(x: float, digits: int = 3) -> str:
    """125M, 1.3B, 1.4T: for tables (JSON keeps exact numbers)."""
    for suffix, div in (("P", 1e15), ("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.{digits}g}{suffix}"
    return f"{x:.{digits}g}"


def format_cell(value: Any) -> str:
    """A table cell: floats to 4 decimals (scientific when tiny or huge), large ints with commas."""
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4f}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)
