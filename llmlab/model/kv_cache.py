"""A preallocated key/value cache for incremental decoding.

Every layer's keys and values live in one [batch, n_kv_head, max_len, head_dim] buffer; a forward
pass writes its new positions at the shared write pointer `length` and attends over
`[0, length + new)`. Rows are independent sequences: padding inside a row is described by the
attention mask the caller passes (left padding for batched prompts of different lengths), so one
cache serves single prompts, batches, and (by `select`ing rows) batches whose members finish at
different times.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_kv_head: int,
        head_dim: int,
        max_len: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        shape = (batch_size, n_kv_head, max_len, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.max_len = max_len
        self.length = 0  # positions already written (the same for every row)

    @classmethod
    def for_model(cls, model, batch_size: int, max_len: int | None = None) -> "KVCache":
        cfg = model.config
        param = next(model.parameters())
        return cls(
            cfg.n_layer, batch_size, cfg.n_kv_head, cfg.head_dim, max_len or cfg.context_length,
            device=param.device, dtype=param.dtype,
        )

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write this step's keys/values for `layer`; return all keys/values so far (views)."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache is full: {end} positions needed, {self.max_len} allocated")
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, n: int) -> None:
        """Move the write pointer after all layers have written `n` new positions."""
        self.length += n

    def select(self, rows: torch.Tensor | list[int]) -> None:
        """Keep only the given batch rows (in that order), e.g. to drop finished sequences."""
        idx = torch.as_tensor(rows, device=self.keys[0].device, dtype=torch.long)
        self.keys = [k.index_select(0, idx) for k in self.keys]
        self.values = [v.index_select(0, idx) for v in self.values]
