"""Process-group setup for `torchrun`: DistributedDataParallel on gloo (CPU) or NCCL (GPU).

The same script runs alone or under `torchrun --nproc_per_node N`; torchrun's environment
variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) decide which.

Two kinds of sums cross processes: device tensors (losses and metrics, `all_reduce_`), which stay
on the device, and a few host numbers (batch weights, token counts, the stop flag, `all_reduce_sum`),
which go through a CPU (gloo) group so that under NCCL reading them never waits for the GPU's queue.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


_host_group: Any = None  # the CPU group for host numbers, when the default group is not gloo


def is_main_process() -> bool:
    """Rank 0, or the only process (from torchrun's RANK, so before or after the process group)."""
    return os.environ.get("RANK", "0") == "0"


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world)
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    _cpu_group()  # formed now, by every process at the same point (creating a group is collective)
    return info


def _cpu_group():
    global _host_group
    if dist.get_backend() != "gloo" and _host_group is None:
        _host_group = dist.new_group(backend="gloo")
    return _host_group


def all_reduce_sum(values: list[float], device=None) -> list[float]:
    """Sum a few host numbers over all processes (identity when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=_cpu_group())
    return t.tolist()


def all_reduce_(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all processes in place, on its device (no host read); returns it."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    global _host_group
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _host_group = None
