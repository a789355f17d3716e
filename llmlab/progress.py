"""Progress bars for long work: rate and ETA on a terminal, a line every half minute in logs."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(iterable: Any = None, **kwargs: Any):
    """A tqdm bar on stderr. When stderr is not a terminal (CI logs, pipes), it redraws rarely
    instead of flooding the log with carriage-return updates."""
    from tqdm.auto import tqdm

    stream = kwargs.setdefault("file", sys.stderr)
    interactive = hasattr(stream, "isatty") and stream.isatty()
    kwargs.setdefault("mininterval", 0.2 if interactive else 30.0)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def close_open_bars() -> None:
    """Close the progress bars still on screen (work stopped by an error leaves its bar open), so
    that a message printed next starts on a fresh line instead of after the bar."""
    std = sys.modules.get("tqdm.std")  # no tqdm imported: no bar was drawn
    if std is None:
        return
    for bar in list(getattr(std.tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # a bar whose stream is gone must not hide the error being reported
            pass
