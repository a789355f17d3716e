"""Training configuration: one dataclass whose fields are the CLI flags one-to-one.

A run writes its resolved config as `train_config.json` in the run directory, so
`llmlab pretrain --config runs/x/train_config.json` repeats it exactly.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from llmlab.errors import ConfigError

SCHEDULES = ("cosine", "wsd", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


# Values of path settings that name no file: the generated dataset, the built-in reward.
NOT_PATHS = ("tinyworld", "sentiment")


def _opt(default: Any, help: str, *, count: bool = False, path: bool = False, flags: tuple[str, ...] = ()) -> Any:
    """A dataclass field whose help text becomes its CLI flag's --help.

    count=True marks a token count: the flag (and a config file) also accepts 20M, 200k, 1e6.
    path=True marks a file or folder: train_config.json stores it as an absolute path.
    flags: the CLI spellings, when not just --field-name (e.g. a short name and the old one)."""
    return field(default=default, metadata={"help": help, "count": count, "path": path, "flags": flags})


@dataclass
class TrainConfig:
    # what to train
    data: str = _opt("", "Prepared dataset directory (from `llmlab data prepare`).", path=True)
    out: str = _opt("", "Run directory: checkpoint/, metrics.jsonl, loss_curve.png, train_config.json.", path=True)
    preset: str = _opt("tiny", "Model preset (see `llmlab presets`).")
    model_config: str | None = _opt(None, "JSON/YAML file of ModelConfig fields applied on top of the preset.",
                                    path=True)
    init_from: str | None = _opt(None, "Start from this checkpoint's weights instead of a random init.", path=True)
    # batch and budget
    seq_len: int | None = _opt(None, "Tokens per training window (default: the model's context length).")
    batch_size: int = _opt(16, "Sequences per micro-batch per process.")
    global_batch_tokens: int | None = _opt(
        None, "Tokens per optimizer step over all processes; reached by gradient accumulation "
        "(default: one micro-batch per process, no accumulation).", count=True)
    max_steps: int | None = _opt(None, "Stop after this many optimizer steps.")
    max_tokens: int | None = _opt(None, "Stop after this many training tokens (e.g. 5000000, 200k, 20M).", count=True)
    minutes: float | None = _opt(None, "Stop after this many minutes of training.")
    # optimiser and schedule
    lr: float = _opt(3e-3, "Peak learning rate.")
    min_lr_ratio: float = _opt(0.1, "Final learning rate as a fraction of the peak.")
    warmup_steps: int = _opt(50, "Linear warmup steps.")
    schedule: str = _opt("cosine", "Learning-rate schedule after warmup: cosine, wsd (warmup-stable-decay) or constant.")
    decay_fraction: float = _opt(0.2, "wsd only: fraction of the steps spent decaying at the end.")
    weight_decay: float = _opt(0.1, "AdamW decoupled weight decay (matrices only; never norms, biases, embeddings).")
    beta1: float = _opt(0.9, "AdamW beta1.")
    beta2: float = _opt(0.95, "AdamW beta2.")
    eps: float = _opt(1e-8, "AdamW epsilon.")
    grad_clip: float = _opt(1.0, "Clip the global gradient norm to this value (0: no clipping).")
    # robustness
    spike_factor: float = _opt(10.0, "Skip an update whose gradient norm exceeds this multiple of the recent median.")
    max_bad_steps: int = _opt(5, "Stop the run after this many skipped updates in a row.")
    # evaluation, checkpoints, logging
    eval_every: int = _opt(100, "Evaluate on the validation split every N steps (and at the end).")
    eval_windows: int = _opt(64, "Validation windows per evaluation.")
    save_every: int = _opt(200, "Write the checkpoint every N steps (and at the end).")
    log_every: int = _opt(1, "Write a metrics.jsonl line every N steps.")
    samples: int = _opt(2, "Continuations to sample and print at each evaluation (0: none).")
    sample_prompt: str = _opt("Once upon a time", "Prompt for the evaluation samples.")
    # hardware
    device: str = _opt("auto", "cpu, cuda, cuda:N, mps, or auto.")
    precision: str = _opt("auto", "fp32, bf16 (autocast), fp16 (autocast + loss scaling, CUDA), or auto (bf16, else fp16, on GPU; bf16 on CPUs with AMX; fp32 elsewhere).")
    compile: bool = _opt(False, "Compile the model with torch.compile.")
    seed: int = _opt(1337, "Seed for initialisation and data order.")
    threads: int | None = _opt(None, "CPU threads for PyTorch (default: PyTorch's choice).")
    progress: bool = _opt(True, "Show a progress bar.")

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        need(bool(self.data), "--data is required")
        need(bool(self.out), "--out is required")
        need(self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}")
        need(self.seq_len is None or self.seq_len > 0, f"seq_len must be positive, got {self.seq_len}")
        need(self.lr > 0, f"lr must be positive, got {self.lr}")
        need(0.0 <= self.min_lr_ratio <= 1.0, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        need(self.warmup_steps >= 0, "warmup_steps must be >= 0")
        need(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        need(0.0 < self.decay_fraction <= 1.0, "decay_fraction must be in (0, 1]")
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        need(self.grad_clip >= 0, "grad_clip must be >= 0 (0 disables clipping)")
        need(self.eval_every > 0 and self.save_every > 0 and self.log_every > 0, "eval/save/log intervals must be positive")
        need(
            any(v is not None for v in (self.max_steps, self.max_tokens, self.minutes)),
            "give a budget: --max-steps, --max-tokens or --minutes",
        )
        for name in ("max_steps", "max_tokens", "minutes"):
            value = getattr(self, name)
            need(value is None or value > 0, f"{name} must be positive, got {value}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training setting(s): {', '.join(unknown)}")
        data = dict(data)
        for f in fields(cls):
            if f.metadata.get("count") and isinstance(data.get(f.name), str):
                from llmlab.data.tinyworld.tokens import parse_token_count

                data[f.name] = parse_token_count(data[f.name])
        return cls(**data)

    def save(self, path: str | Path) -> None:
        """Write the settings with absolute paths, so --resume and --config work from any directory;
        atomically, as --resume reads them back."""
        from llmlab.checkpoint import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict_with_absolute_paths(), indent=2) + "\n")

    @classmethod
    def path_fields(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.metadata.get("path")]

    def to_dict_with_absolute_paths(self) -> dict[str, Any]:
        data = self.to_dict()
        for name in self.path_fields():
            value = data[name]
            # Only what exists is a path here: hf:NAME or module:function specs stay as they are.
            if isinstance(value, str) and value not in NOT_PATHS and Path(value).exists():
                data[name] = os.path.abspath(value)
        return data

    @classmethod
    def resolve_saved_paths(cls, data: dict[str, Any], run_dir: str | Path) -> dict[str, Any]:
        """Settings read back from `run_dir`'s train_config.json, with relative paths (files written
        before paths were stored absolute) made to work from any directory.

        Such a path was relative to the directory the run was started from. That directory is where
        the saved `out` leads to `run_dir`: out "runs/x" with the run now at /home/u/runs/x means
        /home/u (when `out` does not tell, the run directory's parent). A relative path that exists
        from the current directory is kept, as before; else the one from the start directory is used
        if it exists; else it is left for the run to report as missing."""
        data = dict(data)
        start = _start_directory(Path(os.path.abspath(run_dir)), data.get("out"))
        for name in cls.path_fields():
            value = data.get(name)
            if not isinstance(value, str) or not value or value in NOT_PATHS or os.path.isabs(value):
                continue
            if not Path(value).exists() and (start / value).exists():
                data[name] = str(start / value)
        return data


def _start_directory(run_dir: Path, saved_out: Any) -> Path:
    """The directory a run saved with `out` = saved_out (relative) was started from."""
    if isinstance(saved_out, str) and saved_out and not os.path.isabs(saved_out):
        parts = Path(saved_out).parts
        if not parts:  # "."
            return run_dir
        if ".." not in parts and run_dir.parts[-len(parts):] == parts:
            return Path(*run_dir.parts[: len(run_dir.parts) - len(parts)])
    return run_dir.parent
