"""metrics.jsonl: one JSON object per line (training steps, evaluations, skipped updates),
and the loss-curve PNG drawn from it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from llmlab.checkpoint import atomic_write_text

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss_curve.png"


class MetricsLog:
    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.path = Path(run_dir) / METRICS_FILE
        self.enabled = enabled

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: _clean(v) for k, v in record.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(clean) + "\n")
            f.flush()

    def truncate_after(self, step: int) -> None:
        """On resume, drop records of steps the interrupted run took after its last checkpoint, so
        the log reads as if the run had never stopped."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [line for line in self.read() if line.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def read(self) -> list[dict[str, Any]]:
        return read_metrics(self.path)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    records = []
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        return records
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a crash: everything before it is intact
    return records


def _clean(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible rather than crash
    return value


def plot_loss_curve(records: list[dict[str, Any]], path: str | Path, title: str = "training loss") -> Path | None:
    """Training loss (raw and smoothed) and validation loss against tokens seen, as a PNG."""
    train = [(r["tokens"], r["loss"]) for r in records if "loss" in r and "tokens" in r and isinstance(r["loss"], float)]
    evals = [(r.get("tokens", 0), r["val_loss"]) for r in records if "val_loss" in r and isinstance(r["val_loss"], float)]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    if train:
        xs, ys = zip(*train)
        ax.plot(xs, ys, color="tab:blue", alpha=0.25, linewidth=0.8, label="train (per step)")
        ax.plot(xs, _ema(ys, 0.9), color="tab:blue", linewidth=1.6, label="train (smoothed)")
    if evals:
        xs, ys = zip(*evals)
        ax.plot(xs, ys, "o-", color="tab:orange", linewidth=1.6, markersize=4, label="validation")
    ax.set_xlabel("tokens")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_metric_curves(records: list[dict[str, Any]], path: str | Path, series: Sequence[tuple[str, str]],
                       title: str) -> Path | None:
    """One panel per (metrics.jsonl key, axis label) against the step, as a PNG: the training
    curve of an objective whose loss is not the quantity to watch (PPO: reward and KL)."""
    panels = [(label, [(r["step"], r[key]) for r in records if "step" in r and isinstance(r.get(key), (int, float))])
              for key, label in series]
    panels = [(label, points) for label, points in panels if points]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels) + 0.6), dpi=110, sharex=True, squeeze=False)
    for ax, (label, points) in zip(axes[:, 0], panels):
        xs, ys = zip(*points)
        ax.plot(xs, ys, color="tab:blue", linewidth=1.4)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _ema(values, beta: float) -> list[float]:
    out, avg = [], None
    for v in values:
        avg = v if avg is None else beta * avg + (1 - beta) * v
        out.append(avg)
    return out
