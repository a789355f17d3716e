"""The one training loop.

Pre-training, SFT, reward modelling and DPO differ only in their batches and their objective,
`objective(model, batch) -> (loss, metrics)`; everything else lives here once: AdamW and the
schedule, gradient accumulation to a global batch, clipping, mixed precision, DDP, skipping bad
updates, evaluation, atomic checkpoints with exact resume, metrics.jsonl, a progress bar, and
stopping on Ctrl-C/SIGTERM at a step boundary (StopSignals), so that resuming stays exact.

On a GPU the loop makes no per-step host syncs where it need not: losses and metrics stay on the
device and are read once per log interval (`log_every`), the decision to skip a bad update is taken on
the device (the fused AdamW kernel skips itself), batches are counted before their copy to the device,
and that copy is asynchronous from pinned memory. Where the optimizer cannot skip on the device (CPU,
fp16 loss scaling) each step reads its numbers once, which on a CPU costs nothing.

A run directory holds (when a run may start, resume or must refuse: llmlab.train.run_dir)
    train_config.json   the resolved settings, paths absolute (repeat a run with --config)
    metrics.jsonl       one line per optimizer step and per evaluation
    loss_curve.png      drawn at every evaluation
    checkpoint/         the latest checkpoint: model files + trainer_state.pt + rng_state_<rank>.pt
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch

from llmlab.checkpoint import save_checkpoint
from llmlab.errors import CheckpointError, Interrupted, LLMLabError
from llmlab.train.config import TrainConfig
from llmlab.train.distributed import DistInfo, all_reduce_, all_reduce_sum
from llmlab.train.metrics_log import PLOT_FILE, MetricsLog, plot_loss_curve
from llmlab.train.optim import lr_at, make_optimizer

CHECKPOINT_DIR = "checkpoint"
TRAINER_STATE = "trainer_state.pt"
CONFIG_FILE = "train_config.json"


class TrainingError(LLMLabError):
    """Training cannot continue (e.g. repeated non-finite losses)."""


class Batches(Protocol):
    """An endless batch iterator whose position can be saved and restored."""

    def __next__(self) -> dict[str, torch.Tensor]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


Objective = Callable[[torch.nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, Any]]]


@dataclass
class LoopState:
    step: int = 0  # optimizer steps taken (skipped ones included)
    tokens: int = 0  # input tokens processed, all processes together
    elapsed: float = 0.0  # training seconds, summed over resumed sessions
    total_steps: int | None = None
    bad_in_a_row: int = 0
    skipped: int = 0
    last_eval: dict[str, float] = field(default_factory=dict)


@dataclass
class PendingStep:
    """A step taken whose numbers may still be on the device: `values` holds the gradient norm, the
    median of the recent ones, the skip code (_skip_code), then the loss and metric (`keys`) sums
    over micro-batches and processes; `host` is the same once read."""

    step: int
    lr: float
    tokens: int
    elapsed: float
    step_tokens: int
    total_weight: float
    keys: list[str]
    values: torch.Tensor
    host: list[float] | None = None
    seconds: float = 0.0


def batch_weight(objective: Objective, batch: dict[str, torch.Tensor]) -> float:
    """How much a micro-batch counts in the step's average: the objective's own count (e.g. target
    tokens for SFT, pairs for DPO) if it defines one, else its number of sequences."""
    weigh = getattr(objective, "weight", None)
    if weigh is not None:
        return float(weigh(batch))
    return float(next(iter(batch.values())).shape[0])


def move_batch(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    """`batch` on `device`. Copies to a GPU are asynchronous, which they can only be from pinned
    (page-locked), contiguous host memory: a tensor the loader did not pin is pinned here first
    (from pageable memory a `non_blocking` copy would wait for the GPU anyway)."""
    device = torch.device(device)
    if device.type != "cuda":
        return {k: v.to(device) for k, v in batch.items()}
    out = {}
    for k, v in batch.items():
        if v.device.type == "cpu":
            v = v.contiguous()
            v = v if v.is_pinned() else v.pin_memory()
        out[k] = v.to(device, non_blocking=True)
    return out


class NormHistory:
    """The last `size` accepted gradient norms, kept on the device so that the spike test (is this
    norm over spike_factor x their median?) needs no host read."""

    def __init__(self, device: torch.device, dtype: torch.dtype, size: int = 50):
        self.size = size
        self.values = torch.zeros(size, dtype=dtype, device=device)
        self.count = torch.zeros((), dtype=torch.long, device=device)  # norms pushed so far
        self._slots = torch.arange(size, device=device)

    def median(self) -> torch.Tensor:
        """The median of the kept norms (the mean of the middle two for an even count, as
        statistics.median); inf while there are none."""
        n = self.count.clamp(max=self.size)
        ordered = torch.where(self._slots < n, self.values, torch.inf).sort().values
        middle = torch.stack([(n - 1).clamp(min=0) // 2, n // 2])  # gathered, not indexed: no .item()
        return ordered.gather(0, middle).mean()

    def push(self, norm: torch.Tensor, accept: torch.Tensor) -> None:
        """Keep `norm` (replacing the oldest once full) if `accept`."""
        slot = (self.count % self.size).reshape(1)
        kept = torch.where(accept, norm.to(self.values.dtype).reshape(1), self.values.gather(0, slot))
        self.values.scatter_(0, slot, kept)
        self.count += accept.long()

    def to_list(self) -> list[float]:
        """Oldest first (a host read: for checkpoints)."""
        n, values = int(self.count), self.values.tolist()
        if n <= self.size:
            return values[:n]
        start = n % self.size
        return values[start:] + values[:start]

    def load(self, norms: list[float]) -> None:
        norms = list(norms)[-self.size:]
        self.values.zero_()
        if norms:
            self.values[: len(norms)] = torch.tensor(norms, dtype=self.values.dtype)
        self.count.fill_(len(norms))


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        if precision == "fp16" and device.type != "cuda":
            raise LLMLabError("fp16 mixed precision needs a CUDA GPU; use bf16 or fp32 on this device")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_amx_bf16():
        return "bf16"  # AMX tiles multiply bf16 matrices several times faster than fp32
    return "fp32"


def cpu_has_amx_bf16() -> bool:
    """True on x86 CPUs with AMX-BF16 (Sapphire Rapids and later), where bf16 autocast pays off."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def autocast_context(precision: str, device: torch.device):
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype)
    return contextlib.nullcontext()


class Trainer:
    def __init__(
        self,
        model: torch.nn.Module,
        objective: Objective,
        batches: Batches,
        config: TrainConfig,
        *,
        device: torch.device,
        dist: DistInfo | None = None,
        tokenizer=None,
        eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
        sample_fn: Callable[[torch.nn.Module], list[str]] | None = None,
        accum_steps: int = 1,
        tokens_per_step: int | None = None,
        checkpoint_extra: Callable[[Path], None] | None = None,
        extra_parameters: list[torch.nn.Parameter] | None = None,
        log: Callable[[str], None] = print,
    ):
        self.raw_model = model
        self.objective = objective
        self.batches = batches
        self.cfg = config
        self.device = device
        self.dist = dist or DistInfo()
        self.tokenizer = tokenizer
        self.eval_fn = eval_fn
        self.sample_fn = sample_fn
        self.accum_steps = accum_steps
        self.tokens_per_step = tokens_per_step
        self.checkpoint_extra = checkpoint_extra
        self.log = log if self.dist.is_main else (lambda *_: None)
        self.out = Path(config.out)
        self.precision = resolve_precision(config.precision, device)
        self.state = LoopState()
        self.metrics = MetricsLog(self.out, enabled=self.dist.is_main)
        self._saved_step: int | None = None  # the step of the checkpoint on disk, if any

        self.model = model
        if config.compile:
            self.model = torch.compile(self.model)
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            self.model = DDP(self.model, device_ids=ids)
        self.optimizer = make_optimizer(
            model, config.lr, config.weight_decay, betas=(config.beta1, config.beta2), eps=config.eps
        )
        if extra_parameters:
            self.optimizer.add_param_group({"params": extra_parameters, "weight_decay": 0.0})
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        # Sums of losses and metrics in float64, as exact as the Python floats they replace (no float64 on MPS).
        self.acc_dtype = torch.float32 if device.type == "mps" else torch.float64
        self.norms = NormHistory(device, self.acc_dtype)
        self._pending: list[PendingStep] = []
        self._rate = [0, 0.0]  # tokens and seconds since the last metrics line, for its tokens_per_s

    # ------------------------------------------------------------------ budget
    def plan(self, tokens_per_step: int) -> None:
        """Fix the number of steps from the budget (max_steps, max_tokens; minutes estimates later)."""
        cfg = self.cfg
        limits = []
        if cfg.max_steps is not None:
            limits.append(cfg.max_steps)
        if cfg.max_tokens is not None:
            limits.append(max(1, math.ceil(cfg.max_tokens / tokens_per_step)))
        if limits:  # recomputed on resume too, so a resumed run may be given a new budget
            self.state.total_steps = min(limits)

    # ------------------------------------------------------------------ resume
    def resume(self, checkpoint_dir: Path | None = None) -> bool:
        """Restore model, optimizer, schedule position, RNG and data position from the run's
        latest checkpoint (a one-line CheckpointError if it lacks the trainer state). Returns True."""
        ckpt = Path(checkpoint_dir or self.out / CHECKPOINT_DIR)
        recover_interrupted_save(ckpt)
        state_file = ckpt / TRAINER_STATE
        if not state_file.is_file():
            raise CheckpointError(f"cannot resume: {state_file} is missing")
        from llmlab.checkpoint import check_state_dict, read_safetensors, weights_for_saving

        tensors = read_safetensors(ckpt / "model.safetensors")
        check_state_dict(weights_for_saving(self.raw_model), tensors, ckpt / "model.safetensors")
        self.raw_model.load_state_dict(tensors, strict=not self.raw_model.config.tie_embeddings)
        try:
            saved = torch.load(state_file, map_location=self.device, weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{state_file} is corrupt: {str(exc).splitlines()[0]}") from None
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scaler is not None and saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        self.batches.load_state_dict(saved["data"])
        loop = saved["loop"]
        self.state.step, self.state.tokens, self.state.elapsed = loop["step"], loop["tokens"], loop["elapsed"]
        self.state.total_steps = loop["total_steps"]
        self.state.skipped = loop.get("skipped", 0)
        self.norms.load(loop.get("grad_norms", []))
        rng_file = ckpt / f"rng_state_{self.dist.rank}.pt"
        if rng_file.is_file():
            set_rng_state(torch.load(rng_file, weights_only=True))
        self.metrics.truncate_after(self.state.step)
        self._saved_step = self.state.step
        self.log(f"resumed from {ckpt} at step {self.state.step} ({self.state.tokens:,} tokens)")
        return True

    # ------------------------------------------------------------------ checkpoint
    def save(self) -> Path:
        """Write the checkpoint (rank 0) atomically, replacing the run's own previous one (OUT/checkpoint);
        other ranks only save their RNG state."""
        self._flush()
        ckpt = self.out / CHECKPOINT_DIR
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "data": self.batches.state_dict(),
            "loop": {
                "step": self.state.step, "tokens": self.state.tokens, "elapsed": self.state.elapsed,
                "total_steps": self.state.total_steps, "skipped": self.state.skipped,
                "grad_norms": self.norms.to_list(),
            },
        }

        def write_extra(tmp: Path) -> None:
            torch.save(state, tmp / TRAINER_STATE)
            torch.save(get_rng_state(), tmp / "rng_state_0.pt")
            self.cfg.save(tmp / CONFIG_FILE)
            if self.checkpoint_extra is not None:
                self.checkpoint_extra(tmp)

        if self.dist.enabled:
            # Ranks > 0 keep their RNG next to the checkpoint after rank 0 has put it in place.
            from llmlab.train.distributed import barrier

            if self.dist.is_main:
                save_checkpoint(ckpt, self.raw_model, self.tokenizer, write_extra=write_extra, replace=True)
            barrier()
            if not self.dist.is_main:
                torch.save(get_rng_state(), ckpt / f"rng_state_{self.dist.rank}.pt")
            barrier()
        else:
            save_checkpoint(ckpt, self.raw_model, self.tokenizer, write_extra=write_extra, replace=True)
        self._saved_step = self.state.step
        return ckpt

    # ------------------------------------------------------------------ the loop
    def train(self) -> dict[str, Any]:
        """Run to the budget and return the final metrics. On the first Ctrl-C or a SIGTERM the loop
        stops at the next step boundary (all processes at the same one), saves, and raises
        Interrupted, so the saved data position is exactly the steps taken and --resume continues
        bit for bit; a second Ctrl-C raises Interrupted at once, without saving."""
        cfg, st = self.cfg, self.state
        self.out.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            cfg.save(self.out / CONFIG_FILE)
            if st.step == 0:
                self.metrics.truncate_after(0)  # a fresh start: forget any earlier attempt's lines
        with StopSignals(self._abort_message, announce=self.dist.is_main) as signals:
            stopped = self._run_loop(signals)
            self._flush()
            if stopped:
                ckpt = self.save() if self._saved_step != st.step else self.out / CHECKPOINT_DIR
                raise Interrupted(f"interrupted at step {st.step}; checkpoint saved to {ckpt}", str(ckpt))
            result = self._evaluate(None) if self.eval_fn is not None else {}
            ckpt = self.save()
        return {**result, "step": st.step, "tokens": st.tokens, "seconds": st.elapsed, "checkpoint": str(ckpt)}

    def _run_loop(self, signals: "StopSignals") -> bool:
        """Optimizer steps until the budget is spent (False) or a stop is requested (True)."""
        cfg, st = self.cfg, self.state
        session_start = time.perf_counter()
        elapsed_before = st.elapsed
        bar = None
        try:
            while True:
                if st.total_steps is not None and st.step >= st.total_steps:
                    return False
                if cfg.minutes is not None and st.elapsed >= cfg.minutes * 60:
                    return False
                if self._stop_agreed(signals.requested):
                    return True
                t0 = time.perf_counter()
                pending = self._step()
                st.elapsed = elapsed_before + (time.perf_counter() - session_start)
                pending.seconds = dt = time.perf_counter() - t0
                self._fit_steps_to_time_budget(dt)
                if bar is None:
                    bar = self._progress_bar()
                elif bar.total != st.total_steps:
                    bar.total = st.total_steps
                self._pending.append(pending)
                if pending.host is not None or st.step % cfg.log_every == 0:
                    self._flush(bar)  # read already (no skipping on the device), or the interval's one read
                if bar is not None:
                    bar.update(1)
                final = st.total_steps is not None and st.step >= st.total_steps
                if final or (cfg.minutes is not None and st.elapsed >= cfg.minutes * 60):
                    return False
                if st.step % cfg.eval_every == 0:
                    self._evaluate(bar)
                if st.step % cfg.save_every == 0:
                    self.save()
        finally:
            if bar is not None:
                bar.close()

    def _flush(self, bar=None) -> None:
        """Account for the pending steps in order (reading their numbers in one go) and write the
        metrics lines due: every log_every steps, and every skipped update."""
        pending, self._pending = self._pending, []
        self._read(pending)
        for p in pending:
            record = self._account(p)
            self._rate[0] += record.pop("_step_tokens")
            self._rate[1] += p.seconds
            if p.step % self.cfg.log_every and "skipped" not in record:
                continue
            record["tokens_per_s"] = self._rate[0] / max(self._rate[1], 1e-9)
            self._rate = [0, 0.0]
            mfu = self._mfu(record["tokens_per_s"])
            if mfu is not None:
                record["mfu"] = mfu
            self.metrics.write(record)
            if bar is not None:
                bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:,.0f}")

    def _stop_agreed(self, requested: bool) -> bool:
        """Under torchrun a signal reaches the processes at different moments: they all stop at the
        first step boundary where any of them has been asked to (one tiny all-reduce per step)."""
        if not self.dist.enabled:
            return requested
        return all_reduce_sum([float(requested)], self.device)[0] > 0

    def _abort_message(self) -> tuple[str, str | None]:
        # An aborted save leaves the previous checkpoint in place (or, between its two renames,
        # where resume() puts it back).
        ckpt = self.out / CHECKPOINT_DIR
        if self._saved_step is None:
            return "second Ctrl-C: aborted without saving; no checkpoint was saved yet", None
        return (f"second Ctrl-C: aborted without saving; the last checkpoint is {ckpt} (step {self._saved_step})",
                str(ckpt))

    def train_step(self) -> dict[str, Any]:
        """One optimizer step over accum_steps micro-batches; returns the step's metrics record
        (read to the host at once: for callers that want every step's numbers)."""
        pending = self._step()
        self._read([pending])
        return self._account(pending)

    @property
    def skips_on_device(self) -> bool:
        """Whether a bad update is skipped by the optimizer itself, from a device-side flag: the fused
        AdamW kernel honours `found_inf` as it does for loss scaling (fp16 scaling keeps its own)."""
        return self.scaler is None and bool(self.optimizer.defaults.get("fused"))

    def _step(self) -> PendingStep:
        """Take one step; its numbers stay on the device unless the skip decision needs the host."""
        cfg, st = self.cfg, self.state
        micro = [next(self.batches) for _ in range(self.accum_steps)]
        # Counted on the host copies, before they move: no device read.
        weights = [batch_weight(self.objective, b) for b in micro]
        step_tokens = sum(int(b["input_ids"].numel()) for b in micro if "input_ids" in b)
        total_weight, step_tokens = all_reduce_sum([sum(weights), float(step_tokens)], self.device)
        micro = [move_batch(b, self.device) for b in micro]

        lr = lr_at(
            st.step, max_lr=cfg.lr, total_steps=st.total_steps or 10**9, warmup_steps=cfg.warmup_steps,
            schedule=cfg.schedule, min_lr_ratio=cfg.min_lr_ratio, decay_fraction=cfg.decay_fraction,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        loss_sum, metric_sums = None, {}
        for i, (batch, w) in enumerate(zip(micro, weights)):
            # DDP averages gradients over ranks, hence the world_size factor.
            scale = w * self.dist.world_size / total_weight
            sync = i == len(micro) - 1
            ctx = self.model.no_sync() if (self.dist.enabled and not sync) else contextlib.nullcontext()
            with ctx:
                with autocast_context(self.precision, self.device):
                    loss, metrics = self.objective(self.model, batch)
                scaled = loss * scale
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            loss_sum = _add(loss_sum, self._on_device(loss) * w)
            for k, v in metrics.items():
                metric_sums[k] = _add(metric_sums.get(k), self._on_device(v) * w)
        keys = sorted(metric_sums)
        sums = all_reduce_(torch.stack([loss_sum] + [metric_sums[k] for k in keys]))

        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if cfg.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        else:
            grad_norm = torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
        grad_norm = grad_norm.detach().to(self.acc_dtype)
        median = self.norms.median()
        code = self._skip_code(sums[0] / total_weight, grad_norm, median)
        values = torch.cat([torch.stack([grad_norm, median, code.to(self.acc_dtype)]), sums])
        pending = PendingStep(st.step + 1, lr, st.tokens + int(step_tokens), st.elapsed, int(step_tokens),
                              total_weight, keys, values)
        if self.skips_on_device:
            self.optimizer.found_inf = (code > 0).to(torch.float32)  # the kernel skips where 1
            try:
                self.optimizer.step()
            finally:
                del self.optimizer.found_inf
        else:
            self._read([pending])
            if not pending.host[2]:  # the skip code
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                else:
                    self.optimizer.step()
        if self.scaler is not None:
            self.scaler.update()
        self.norms.push(grad_norm, code == 0)
        self.optimizer.zero_grad(set_to_none=True)
        st.step += 1
        st.tokens += int(step_tokens)
        return pending

    def _on_device(self, value) -> torch.Tensor:
        """A loss or metric as a 0-d accumulator on the device; a host number goes in as a kernel
        argument (torch.full), never as a blocking copy."""
        if isinstance(value, torch.Tensor):
            value = value.detach()
            if value.device.type != "cpu":
                return value.to(self.acc_dtype)
        return torch.full((), float(value), dtype=self.acc_dtype, device=self.device)

    def _skip_code(self, loss: torch.Tensor, grad_norm: torch.Tensor, median: torch.Tensor) -> torch.Tensor:
        """Why this step's update must be skipped, computed on the device: 0 it need not be, 1 a
        non-finite loss, 2 a non-finite gradient norm (unless fp16 loss scaling, which skips such
        steps itself and lowers its scale), 3 after warmup with 10 or more recent norms, a norm over
        spike_factor x their median."""
        cfg = self.cfg
        spike = (self.norms.count >= 10) & (grad_norm > cfg.spike_factor * median)
        if self.state.step < cfg.warmup_steps:
            spike = torch.zeros_like(spike)
        code_norm = torch.where(torch.isfinite(grad_norm), torch.where(spike, 3, 0),
                                0 if self.scaler is not None else 2)
        return torch.where(torch.isfinite(loss), code_norm, 1)

    def _read(self, pending: list[PendingStep]) -> None:
        """Bring the numbers of steps not read yet to the host: one device read for all of them."""
        unread = [p for p in pending if p.host is None]
        if not unread:
            return
        flat = torch.cat([p.values for p in unread]).tolist()
        for p in unread:
            n = p.values.numel()
            p.host, flat = flat[:n], flat[n:]

    def _account(self, p: PendingStep) -> dict[str, Any]:
        """The metrics record of a read step, and the bookkeeping of skipped updates (a run stops
        with TrainingError after max_bad_steps of them in a row)."""
        cfg, st = self.cfg, self.state
        grad_norm, median, code, loss_sum, *sums = p.host
        record: dict[str, Any] = {
            "step": p.step, "loss": loss_sum / p.total_weight, "lr": p.lr, "tokens": p.tokens,
            "grad_norm": grad_norm, "elapsed": round(p.elapsed, 3),
            **{k: v / p.total_weight for k, v in zip(p.keys, sums)}, "_step_tokens": p.step_tokens,
        }
        if not code:
            st.bad_in_a_row = 0
            return record
        reason = {1: f"non-finite loss {record['loss']}", 2: f"non-finite gradient norm {grad_norm}",
                  3: f"gradient norm {grad_norm:.3g} is over {cfg.spike_factor:g}x the recent median {median:.3g}"}
        st.skipped += 1
        st.bad_in_a_row += 1
        record["skipped"] = reason[int(code)]
        self.log(f"step {p.step}: skipped the update ({record['skipped']})")
        if st.bad_in_a_row >= cfg.max_bad_steps:
            ckpt = self.out / CHECKPOINT_DIR
            where = f"the last good checkpoint is {ckpt}" if ckpt.exists() else "no checkpoint was written yet"
            self.metrics.write({k: v for k, v in record.items() if not k.startswith("_")})
            raise TrainingError(
                f"{st.bad_in_a_row} bad updates in a row (last: {record['skipped']}); stopping. {where}. "
                "Try a lower --lr, more --warmup-steps, or fp32/bf16 precision."
            )
        return record

    # ------------------------------------------------------------------ helpers
    def _evaluate(self, bar) -> dict[str, float]:
        if self.eval_fn is None:
            return {}
        self._flush(bar)  # the steps' lines before the evaluation's
        self.model.eval()
        with torch.no_grad(), autocast_context(self.precision, self.device):
            result = self.eval_fn(self.raw_model)
        self.state.last_eval = result
        self.metrics.write({"step": self.state.step, "tokens": self.state.tokens, **result})
        if self.dist.is_main:
            summary = "  ".join(f"{k} {v:.4f}" for k, v in result.items() if isinstance(v, float))
            write = bar.write if bar is not None else self.log
            write(f"step {self.state.step}: {summary}")
            if self.sample_fn is not None:
                for text in self.sample_fn(self.raw_model):
                    write("  | " + text.replace("\n", "\n  | "))
            plot_loss_curve(self.metrics.read(), self.out / PLOT_FILE)
        return result

    def _fit_steps_to_time_budget(self, step_seconds: float) -> None:
        """With only a time budget, re-estimate after every step how many steps fit, from a running
        average of recent step times (the first steps, slowed by compilation and warm-up, are left
        out), so the learning-rate schedule ends when the time does."""
        cfg, st = self.cfg, self.state
        if cfg.minutes is None or cfg.max_steps is not None or cfg.max_tokens is not None:
            return
        if st.step <= 2:
            return
        avg = getattr(self, "_avg_step_seconds", None)
        self._avg_step_seconds = step_seconds if avg is None else 0.9 * avg + 0.1 * step_seconds
        remaining = max(0.0, cfg.minutes * 60 - st.elapsed)
        st.total_steps = st.step + max(1, int(remaining / self._avg_step_seconds))

    def _progress_bar(self):
        if not (self.cfg.progress and self.dist.is_main):
            return None
        from llmlab.progress import progress_bar

        return progress_bar(total=self.state.total_steps, initial=self.state.step - 1, unit="step", desc="training")

    def _mfu(self, tokens_per_s: float) -> float | None:
        if self.device.type != "cuda":
            return None
        peak = peak_flops(torch.cuda.get_device_name(self.device))
        if peak is None:
            return None
        from llmlab.model.accounting import flops_per_token

        seq_len = getattr(self.batches, "seq_len", None)
        return flops_per_token(self.raw_model.config, seq_len) * tokens_per_s / (peak * self.dist.world_size)

def _add(total: torch.Tensor | None, term: torch.Tensor) -> torch.Tensor:
    return term if total is None else total + term


# ---------------------------------------------------------------------------- stopping on signals
class StopSignals:
    """While active, the first Ctrl-C (SIGINT) or a SIGTERM only sets `requested`, for the loop to
    stop at a step boundary; a second Ctrl-C raises Interrupted(*abort_message()) at once. The
    previous handlers are restored on exit. Outside the main thread (no signals there) it does
    nothing.

    Under torchrun a terminal's Ctrl-C reaches each worker twice: from the terminal, and relayed by
    torchrun's agent a moment later. So there a Ctrl-C within `RELAYED_SECONDS` of the first counts
    as the same one."""

    RELAYED_SECONDS = 1.0

    def __init__(self, abort_message: Callable[[], tuple[str, str | None]], announce: bool = True):
        self.abort_message = abort_message
        self.announce = announce
        self.requested = False
        self.first_ctrl_c: float | None = None
        self.same_within = self.RELAYED_SECONDS if "TORCHELASTIC_RUN_ID" in os.environ else 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not in the main thread
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT:
            now = time.monotonic()
            if self.first_ctrl_c is None:
                self.first_ctrl_c = now
            elif now - self.first_ctrl_c >= self.same_within:
                raise Interrupted(*self.abort_message())
        if not self.requested:
            what = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
            self._note(f"\n{what}: finishing the current step, then saving a checkpoint and stopping"
                       + (" (Ctrl-C again aborts without saving)" if signum == signal.SIGINT else "") + "\n")
        self.requested = True

    def _note(self, text: str) -> None:
        # os.write, not print: a handler that prints while the interrupted code is printing too
        # would fail with "reentrant call" on the same buffered stream.
        if self.announce:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                os.write(sys.stderr.fileno(), text.encode())


# ---------------------------------------------------------------------------- utilities
_PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 125e12, "4090": 165e12}


def peak_flops(device_name: str) -> float | None:
    """Dense bf16 peak of known GPUs, for model FLOPs utilisation (MFU)."""
    for key, value in _PEAK_BF16_FLOPS.items():
        if key in device_name:
            return value
    return None


def get_rng_state() -> dict[str, Any]:
    """All RNG states as tensors (so torch.load(weights_only=True) can read them back)."""
    import json

    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": _bytes_tensor(json.dumps(numpy_state)),
        "python": _bytes_tensor(json.dumps([version, list(internal), gauss])),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import json

    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    name, keys, pos, has_gauss, cached = json.loads(_tensor_bytes(state["numpy"]))
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = json.loads(_tensor_bytes(state["python"]))
    random.setstate((version, tuple(internal), gauss))


def _bytes_tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(text.encode()), dtype=torch.uint8)


def _tensor_bytes(t: torch.Tensor) -> str:
    return bytes(t.cpu().numpy().tobytes()).decode()


def recover_interrupted_save(ckpt: Path) -> None:
    """A save killed between its two renames leaves `.NAME.old-PID` and no NAME: put it back."""
    if ckpt.exists() or not ckpt.parent.exists():
        return
    olds = sorted(ckpt.parent.glob(f".{ckpt.name}.old-*"))
    if olds:
        with contextlib.suppress(FileNotFoundError):  # under torchrun another process may be first
            olds[-1].rename(ckpt)


def batches_from(iterable: Iterator[dict[str, torch.Tensor]]) -> Batches:
    """Wrap a plain iterator (no resumable position) for the Trainer."""

    class _Plain:
        def __init__(self, it):
            self.it, self.consumed = it, 0

        def __next__(self):
            self.consumed += 1
            return next(self.it)

        def state_dict(self):
            return {"consumed": self.consumed}

        def load_state_dict(self, state):
            for _ in range(state["consumed"]):
                next(self)

    return _Plain(iter(iterable))
