"""Fixed-length training windows from token shards, deterministic and resumable.

Each shard is cut into windows of seq_len + 1 tokens at stride seq_len (inputs are the first
seq_len tokens, targets the last seq_len), so a window never crosses a shard boundary and every
token of the split except each shard's short remainder is covered once per epoch. Epoch e visits
the windows in a permutation drawn from (seed, e).

The loader's whole state is one integer: how many windows the run has consumed. Window number i
of the run is a pure function of (seed, i), so a resumed run sees exactly the batches an
uninterrupted one would have, and under DDP each rank takes its own slice of every global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from llmlab.data.shards import ShardedSplit
from llmlab.errors import DataError


@dataclass
class WindowIndex:
    """All windows of a split as (shard, start) pairs, in a fixed canonical order."""

    shard: np.ndarray  # int32 [n]
    start: np.ndarray  # int64 [n]

    @classmethod
    def build(cls, split: ShardedSplit, seq_len: int) -> "WindowIndex":
        shards, starts = [], []
        for i, arr in enumerate(split.arrays):
            n = (len(arr) - 1) // seq_len
            if n > 0:
                shards.append(np.full(n, i, dtype=np.int32))
                starts.append(np.arange(n, dtype=np.int64) * seq_len)
        if not shards:
            raise DataError(
                f"the {split.name} split has {split.tokens} tokens, too few for one window of {seq_len + 1}; "
                "use more data or a shorter --seq-len"
            )
        return cls(np.concatenate(shards), np.concatenate(starts))

    def __len__(self) -> int:
        return len(self.start)


class WindowLoader:
    """Yields batches {"input_ids", "targets"} of shape [batch_size, seq_len] (int64).

    rank/world_size: under DDP every rank calls next() in step; the global batch of step s is
    windows [s*G, (s+1)*G) of the run (G = batch_size * world_size) and rank r takes its r-th slice.
    pin_memory: gather into pinned host memory (for a GPU: its copies are then asynchronous).
    """

    def __init__(
        self,
        split: ShardedSplit,
        seq_len: int,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        consumed: int = 0,
        pin_memory: bool = False,
    ):
        self.split, self.seq_len, self.batch_size = split, seq_len, batch_size
        self.pin_memory = pin_memory
        self.seed, self.shuffle, self.rank, self.world_size = seed, shuffle, rank, world_size
        self.index = WindowIndex.build(split, seq_len)
        self.consumed = consumed  # windows consumed by all ranks together
        self._perm_epoch, self._perm = -1, None

    @property
    def windows_per_epoch(self) -> int:
        return len(self.index)

    @property
    def epoch(self) -> float:
        return self.consumed / len(self.index)

    def state_dict(self) -> dict:
        return {"consumed": self.consumed, "seed": self.seed, "seq_len": self.seq_len}

    def load_state_dict(self, state: dict) -> None:
        if state.get("seq_len", self.seq_len) != self.seq_len or state.get("seed", self.seed) != self.seed:
            raise DataError("the saved data position was made with a different seq_len or seed; cannot resume exactly")
        self.consumed = int(state["consumed"])

    def window_ids(self, run_positions: np.ndarray) -> np.ndarray:
        """Canonical window indices for positions in the run's window sequence."""
        n = len(self.index)
        epochs, offsets = np.divmod(run_positions, n)
        out = np.empty_like(run_positions)
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self._permutation(int(e))[offsets[sel]]
        return out

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            n = len(self.index)
            if self.shuffle:
                self._perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            else:
                self._perm = np.arange(n)
            self._perm_epoch = epoch
        return self._perm

    def gather(self, window_ids: np.ndarray) -> dict[str, torch.Tensor]:
        rows = np.empty((len(window_ids), self.seq_len + 1), dtype=np.int64)
        for row, w in enumerate(window_ids):
            start = self.index.start[w]
            rows[row] = self.split.arrays[self.index.shard[w]][start:start + self.seq_len + 1]
        t = torch.from_numpy(rows)
        if self.pin_memory:  # two contiguous pinned tensors: a strided view would be copied to pageable memory
            out = {"input_ids": torch.empty((len(rows), self.seq_len), dtype=torch.int64, pin_memory=True),
                   "targets": torch.empty((len(rows), self.seq_len), dtype=torch.int64, pin_memory=True)}
            out["input_ids"].copy_(t[:, :-1])
            out["targets"].copy_(t[:, 1:])
            return out
        return {"input_ids": t[:, :-1], "targets": t[:, 1:]}

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        global_batch = self.batch_size * self.world_size
        first = self.consumed + self.rank * self.batch_size
        positions = np.arange(first, first + self.batch_size, dtype=np.int64)
        self.consumed += global_batch
        return self.gather(self.window_ids(positions))


def eval_batches(split: ShardedSplit, seq_len: int, batch_size: int, max_windows: int | None = None):
    """The validation windows in canonical order (the same ones at every evaluation)."""
    loader = WindowLoader(split, seq_len, batch_size, shuffle=False)
    total = len(loader.index) if max_windows is None else min(max_windows, len(loader.index))
    for start in range(0, total, batch_size):
        ids = np.arange(start, min(start + batch_size, total), dtype=np.int64)
        yield loader.gather(ids)
