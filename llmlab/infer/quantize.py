"""Weight quantisation for inference: int8 per-channel and int4 group-wise linear layers.

`quantize_model(model, "int8")` replaces every `nn.Linear` of a TransformerLM (the blocks' and the
output head; the embedding stays a float lookup) in place:

- int8: one scale per output row, s = max|w_row| / 127, q = round(w / s) in [-127, 127], so each
  weight is off by at most s / 2.
- int4: one scale per group of `group_size` consecutive inputs of a row, s = max|w_group| / 7,
  q = round(w / s) in [-7, 7], stored two to a byte (checkpoints hold 4 bits plus 32 / group_size
  bits of scale per weight).

Kernels, chosen by measuring on this project's 2-core AVX-512 CPU at batch 1 (gpt2-12m shapes,
torch 2.13; README "Quantisation" has the table): PyTorch's dynamic int8 linear
(`quantized::linear_dynamic`, fbgemm) runs a 384x1536 layer in about 0.4x the fp32 time, while
`aten._weight_int8pack_mm`, `aten._weight_int4pack_mm_for_cpu` and dequantise-then-matmul were all
slower than fp32 (several times). So on the CPU both modes run the dynamic int8 kernel: it
quantises each call's activations to 8 bits (7 with fbgemm's reduce_range, which avoids int16
overflow on CPUs without VNNI), multiplies in int32, and scales back. An int4 layer feeds it its
int4 weights re-expressed on a per-row int8 grid (an extra error of at most half an int8 step:
int4 saves checkpoint size and memory bandwidth on disk, not compute here). Elsewhere (GPU, MPS,
or a CPU build without a quantised engine) the layers dequantise the weight and use a float matmul.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from llmlab.errors import ConfigError

MODES = ("int8", "int4")
DEFAULT_GROUP_SIZE = 32


# ---------------------------------------------------------------------------- quantisers
def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q int8 [N, K], scale float32 [N]) with weight ~= q * scale[:, None], |error| <= scale / 2."""
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)  # an all-zero row gets a harmless tiny scale
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scale


def quantize_int4(weight: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(packed uint8 [N, K / 2], scales float32 [N, K / group_size]) with |error| <= scale / 2."""
    w = weight.detach().float()
    N, K = w.shape
    groups = w.view(N, K // group_size, group_size)
    scales = (groups.abs().amax(dim=2) / 7).clamp(min=1e-12)
    q = torch.round(groups / scales[..., None]).clamp_(-7, 7).to(torch.int16).view(N, K) + 8  # 1..15
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).to(torch.uint8)
    return packed, scales


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """The int4 codes of `packed` as int8 in [-8, 7], shape [N, 2 * packed.shape[1]]."""
    p = packed.to(torch.int16)
    q = torch.stack([p & 0xF, p >> 4], dim=2).view(packed.shape[0], -1)
    return (q - 8).to(torch.int8)


# torch 2.13 marks quantised tensors deprecated (pytorch#184982): where the kernel is gone, the
# float path below still works.
_FBGEMM = "fbgemm" in torch.backends.quantized.supported_engines and hasattr(torch.ops.quantized, "linear_dynamic")


def _fbgemm_ready(x: torch.Tensor) -> bool:
    return _FBGEMM and x.device.type == "cpu"


def _cpu_has_vnni() -> bool:
    """VNNI multiplies uint8 x int8 straight into int32; without it fbgemm sums pairs in int16, which
    can saturate unless activations use 7 bits (reduce_range). 7 bits cost perplexity (README), so
    they are used only where needed."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


REDUCE_RANGE = not _cpu_has_vnni()


# ---------------------------------------------------------------------------- layers
class _QuantLinear(nn.Module):
    """Shared forward: the fbgemm dynamic int8 kernel on the CPU (packed once, again after the
    buffers change), a dequantised float matmul elsewhere."""

    def __init__(self, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None
        self._packed: Any = None

    def int8_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(q int8 [N, K], per-row scale [N]) that the int8 kernel multiplies by."""
        raise NotImplementedError

    def dequantized(self) -> torch.Tensor:
        raise NotImplementedError

    # The packed weight is built on first use and dropped whenever the buffers may change (loading a
    # state dict, .to()), so the per-call cost is one attribute check.
    def _load_from_state_dict(self, *args, **kwargs):
        self._packed = None
        return super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, *args, **kwargs):
        self._packed = None
        return super()._apply(*args, **kwargs)

    def _packed_params(self):
        if self._packed is None:
            q, scale = self.int8_weight()
            zeros = torch.zeros(q.shape[0], dtype=torch.long)
            with warnings.catch_warnings():  # the deprecation warning above, once per layer
                warnings.simplefilter("ignore")
                qw = torch._make_per_channel_quantized_tensor(q.cpu(), scale.double().cpu(), zeros, 0)
            bias = self.bias.detach().float().cpu() if self.bias is not None else None
            self._packed = torch.ops.quantized.linear_prepack(qw, bias)
        return self._packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _fbgemm_ready(x):
            shape = x.shape
            y = torch.ops.quantized.linear_dynamic(x.reshape(-1, shape[-1]).float().contiguous(),
                                                   self._packed_params(), REDUCE_RANGE)
            return y.view(*shape[:-1], self.out_features).to(x.dtype)
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return nn.functional.linear(x, self.dequantized().to(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Int8Linear(_QuantLinear):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(out_features))

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int8Linear":
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None)
        layer.qweight, layer.scale = quantize_int8(linear.weight)
        if linear.bias is not None:
            layer.bias.data.copy_(linear.bias.detach())
        return layer.to(linear.weight.device)

    def int8_weight(self):
        return self.qweight, self.scale.float()

    def dequantized(self) -> torch.Tensor:
        return self.qweight.float() * self.scale.float()[:, None]


class Int4Linear(_QuantLinear):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, group_size: int = DEFAULT_GROUP_SIZE):
        super().__init__(in_features, out_features, bias)
        self.group_size = group_size
        self.register_buffer("qweight", torch.zeros(out_features, in_features // 2, dtype=torch.uint8))
        self.register_buffer("scales", torch.ones(out_features, in_features // group_size))

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int) -> "Int4Linear":
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, group_size)
        layer.qweight, layer.scales = quantize_int4(linear.weight, group_size)
        if linear.bias is not None:
            layer.bias.data.copy_(linear.bias.detach())
        return layer.to(linear.weight.device)

    def dequantized(self) -> torch.Tensor:
        q = unpack_int4(self.qweight).float().view(self.out_features, -1, self.group_size)
        return (q * self.scales.float()[..., None]).view(self.out_features, self.in_features)

    def int8_weight(self):
        return quantize_int8(self.dequantized())

    def extra_repr(self) -> str:
        return super().extra_repr() + f", group_size={self.group_size}"


# ---------------------------------------------------------------------------- whole models
def check_spec(mode: str, group_size: int | None = None) -> dict[str, Any]:
    """The quantisation record a checkpoint's config.json keeps: {"mode", "group_size"?}."""
    if mode not in MODES:
        raise ConfigError(f"unknown quantisation {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "int8":
        return {"mode": "int8"}
    group_size = DEFAULT_GROUP_SIZE if group_size is None else int(group_size)
    if group_size < 2 or group_size % 2:
        raise ConfigError(f"int4 group size must be an even number >= 2, got {group_size}")
    return {"mode": "int4", "group_size": group_size}


def _linears(model: nn.Module) -> list[tuple[nn.Module, str, nn.Linear]]:
    return [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
            if isinstance(child, nn.Linear)]


def quantize_model(model: nn.Module, mode: str, group_size: int | None = None, *, empty: bool = False) -> nn.Module:
    """Replace every nn.Linear of `model` by its quantised version, in place; returns the model
    with `model.quantization` set (the record `save_checkpoint` writes). empty=True builds the
    layers without quantising (their buffers are about to be loaded from a quantised checkpoint).

    A tied output head is untied: the embedding stays a float lookup, the head is quantised."""
    spec = check_spec(mode, group_size)
    if getattr(model, "quantization", None):
        raise ConfigError(f"this model is already quantised ({model.quantization['mode']})")
    layers = _linears(model)
    if spec["mode"] == "int4":
        g = spec["group_size"]
        for parent, name, layer in layers:
            if layer.in_features % g:
                where = next(n for n, m in model.named_modules() if m is layer)
                raise ConfigError(
                    f"int4 group size {g} does not divide the {layer.in_features} inputs of {where}; "
                    f"pick a --group-size that divides every layer's input width")
    for parent, name, layer in layers:
        if spec["mode"] == "int8":
            new = Int8Linear(layer.in_features, layer.out_features, layer.bias is not None) if empty \
                else Int8Linear.from_linear(layer)
        else:
            new = Int4Linear(layer.in_features, layer.out_features, layer.bias is not None, spec["group_size"]) \
                if empty else Int4Linear.from_linear(layer, spec["group_size"])
        setattr(parent, name, new.to(next(layer.parameters()).device))
    model.quantization = spec
    return model
