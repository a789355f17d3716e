"""Where the evaluators' plots go: one PNG writer, so every figure is saved the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_png(fig: Any, path: str | Path) -> Path:
    """Lay out a matplotlib figure, write it as a PNG (folders created), close it; the path written."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
