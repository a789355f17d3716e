"""Batch-1 linear-layer kernels on the CPU: why llmlab.infer.quantize uses the ones it does.

For each gpt2-12m layer shape (in x out), the time of one [1, in] @ [in, out] product with fp32
weights and with the int8 / int4 kernels PyTorch ships, each on the same random weights:

    fp32             torch.nn.functional.linear
    int8_dynamic     quantized::linear_dynamic (fbgemm; activations rounded to 8 bits per call)
    int8_pack_mm     aten._weight_int8pack_mm (weight-only int8)
    int4_pack_mm     aten._weight_int4pack_mm_for_cpu (weight-only int4, groups of 32)
    dequant_matmul   dequantise the int8 weight, then a float matmul

Each figure is the best of 7 runs of 50 calls (the minimum is the least disturbed by other work on
a shared machine), in microseconds.

    python bench/quant_kernels.py [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

SHAPES = [(384, 1152), (384, 384), (384, 1536), (1536, 384), (384, 4096)]  # qkv, out, up, down, head


def best_us(fn, calls: int = 50, runs: int = 7) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls * 1e6)
    return min(times)


def kernels(k: int, n: int) -> dict:
    import torch

    from llmlab.infer.quantize import REDUCE_RANGE, Int8Linear

    torch.manual_seed(0)
    lin = torch.nn.Linear(k, n, bias=False)
    x = torch.randn(1, k)
    q8 = Int8Linear.from_linear(lin)
    packed = q8._packed_params()
    out = {
        "fp32": best_us(lambda: torch.nn.functional.linear(x, lin.weight)),
        "int8_dynamic": best_us(lambda: torch.ops.quantized.linear_dynamic(x, packed, REDUCE_RANGE)),
        "int8_pack_mm": best_us(lambda: torch.ops.aten._weight_int8pack_mm(x, q8.qweight, q8.scale)),
        "dequant_matmul": best_us(lambda: torch.nn.functional.linear(x, q8.dequantized())),
    }
    g = 32
    w = lin.weight.detach().view(n, k // g, g)
    lo, hi = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
    scale = (hi - lo).clamp(min=1e-6) / 15
    codes = torch.round((w - lo) / scale).clamp(0, 15).to(torch.int32).view(n, k)
    packed4 = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1)
    scale_zeros = torch.cat([scale, lo + 8 * scale], dim=-1).transpose(0, 1).contiguous()
    out["int4_pack_mm"] = best_us(lambda: torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed4, g, scale_zeros))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = {f"{k}x{n}": kernels(k, n) for k, n in SHAPES}
    res = {"threads": torch.get_num_threads(), "torch": torch.__version__, "microseconds": rows}
    if args.json:
        print(json.dumps(res))
        return 0
    names = list(next(iter(rows.values())))
    print(f"batch-1 linear layers, microseconds (best of 7 x 50 calls), {res['threads']} thread(s), torch {res['torch']}")
    print(f"{'in x out':<12}" + "".join(f"{n:>16}" for n in names))
    for shape, r in rows.items():
        print(f"{shape:<12}" + "".join(f"{r[n]:>9.1f} ({r[n] / r['fp32']:.2f}x)" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
