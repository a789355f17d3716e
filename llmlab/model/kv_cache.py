"""A preallocated key/value cache for incremental decoding, with rolling buffers for sliding-window layers.

Positions are cache *columns*: a forward pass writes its new columns at the shared write pointer
`length` and attends over the columns before it. Rows are independent sequences: padding inside a
row is described by the attention mask the caller passes (left padding for batched prompts of
different lengths), so one cache serves single prompts, batches, and (by `select`ing rows) batches
whose members finish at different times.

A full-attention layer stores every column, [batch, n_kv_head, max_len, head_dim]. A layer with a
sliding window W < max_len stores only W slots, column c in slot c % W (a rolling buffer): a query
at column q needs the columns (q - W, q], so older ones are overwritten and the memory stays flat
however long the generation. `key_columns` tells the model which column each returned key holds,
so it can mask empty slots and the window.
"""

from __future__ import annotations

from typing import Sequence

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
        windows: Sequence[int | None] | None = None,
    ):
        self.max_len = max_len
        self.windows = list(windows) if windows is not None else [None] * n_layer
        shapes = [(batch_size, n_kv_head, self.slots(i), head_dim) for i in range(n_layer)]
        self.keys = [torch.zeros(s, device=device, dtype=dtype) for s in shapes]
        self.values = [torch.zeros(s, device=device, dtype=dtype) for s in shapes]
        self.length = 0  # columns already written (the same for every row)

    @classmethod
    def for_model(cls, model, batch_size: int, max_len: int | None = None) -> "KVCache":
        cfg = model.config
        param = next(model.parameters())
        return cls(
            cfg.n_layer, batch_size, cfg.n_kv_head, cfg.head_dim, max_len or cfg.context_length,
            device=param.device, dtype=param.dtype, windows=cfg.attention_windows(),
        )

    def empty_like(self, batch_size: int, max_len: int) -> "KVCache":
        """An empty cache of the same layers, dtype and device, with another size."""
        k = self.keys[0]
        return KVCache(len(self.keys), batch_size, k.shape[1], k.shape[3], max_len, k.device, k.dtype, self.windows)

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]

    def slots(self, layer: int) -> int:
        window = self.windows[layer]
        return window if window is not None and window < self.max_len else self.max_len

    def rolling(self, layer: int) -> bool:
        return self.slots(layer) < self.max_len

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write this step's keys/values for `layer`; return the keys/values to attend over, whose
        columns are `key_columns(layer, k.shape[2])`."""
        T = k.shape[2]
        start, end = self.length, self.length + T
        if end > self.max_len:
            raise ValueError(f"KV cache is full: {end} positions needed, {self.max_len} allocated")
        keys, values = self.keys[layer], self.values[layer]
        if not self.rolling(layer):
            keys[:, :, start:end] = k
            values[:, :, start:end] = v
            return keys[:, :, :end], values[:, :, :end]
        W = keys.shape[2]
        if T == 1:  # decoding: the slot overwritten holds column start - W, outside the new window
            keys[:, :, start % W] = k[:, :, 0]
            values[:, :, start % W] = v[:, :, 0]
            return keys, values
        # Several new columns (a prefill): attend over the old slots plus all new columns, then
        # keep the last W of them.
        out_k, out_v = torch.cat([keys, k], dim=2), torch.cat([values, v], dim=2)
        m = min(T, W)
        slots = torch.arange(end - m, end, device=keys.device) % W
        keys[:, :, slots] = k[:, :, T - m:]
        values[:, :, slots] = v[:, :, T - m:]
        return out_k, out_v

    def key_columns(self, layer: int, T: int) -> torch.Tensor | None:
        """The column each key `update(layer, ...)` returns for T new columns holds (-1: an empty
        slot); None when they are simply columns 0 .. length + T - 1."""
        if not self.rolling(layer):
            return None
        W, L = self.slots(layer), self.length
        device = self.keys[layer].device
        last = L if T == 1 else L - 1  # the newest column in the slots once update has written
        s = torch.arange(W, device=device)
        cols = last - (last - s) % W  # the newest column c <= last with c % W == s
        cols = torch.where(cols >= 0, cols, -1)
        return cols if T == 1 else torch.cat([cols, torch.arange(L, L + T, device=device)])

    def advance(self, n: int) -> None:
        """Move the write pointer after all layers have written `n` new positions."""
        self.length += n

    def select(self, rows: torch.Tensor | list[int]) -> None:
        """Keep only the given batch rows (in that order), e.g. to drop finished sequences."""
        idx = torch.as_tensor(rows, device=self.keys[0].device, dtype=torch.long)
        self.keys = [k.index_select(0, idx) for k in self.keys]
        self.values = [v.index_select(0, idx) for v in self.values]

    def copy_from(self, src: "KVCache", rows: slice, offset: int) -> None:
        """Write `src`'s stored columns into `rows` of this cache, column c landing on column
        c + offset; columns this cache does not keep (before 0, or out of a rolling window) are
        skipped. Set `length` first. Batches merge, shift and grow with this."""
        for layer in range(len(self.keys)):
            n_src, n_dst = src.slots(layer), self.slots(layer)
            lo = max(0, src.length - n_src, self.length - n_dst - offset, -offset)
            hi = min(src.length, self.length - offset)
            if hi <= lo:
                continue
            c = torch.arange(lo, hi, device=self.keys[layer].device)
            self.keys[layer][rows, :, (c + offset) % n_dst] = src.keys[layer][:, :, c % n_src]
            self.values[layer][rows, :, (c + offset) % n_dst] = src.values[layer][:, :, c % n_src]

    def moved(self, max_len: int, shift: int = 0) -> "KVCache":
        """A cache of `max_len` columns holding this one's columns minus the first `shift`
        (moved `shift` to the left): dropping padding every row has, or growing."""
        out = self.empty_like(self.batch_size, max_len)
        out.length = self.length - shift
        out.copy_from(self, slice(None), -shift)
        return out
