"""`llmlab experiment <name>`: one module per experiment, `<name>.py` with a click command `command`
(found by cli/cmd_experiment.py, imported only when run); helpers they share."""

from __future__ import annotations


def parse_ints(text: str, flag: str) -> list[int]:
    from llmlab.errors import ConfigError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated integers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"{flag} takes non-negative integers, got {text!r}")
    return values
