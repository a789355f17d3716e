"""Quantised linear layers (llmlab.infer.quantize), quantised checkpoints and `--quantize`.

The error bounds are derived from the quantisation steps: rounding a weight to a grid of step s
moves it by at most s / 2, so a row's output moves by at most sum_j s_j / 2 * |x_j|; the int8
kernel also rounds the activations (one step s_x per call), adding at most s_x / 2 * sum_j |w_hat_j|.
"""

from __future__ import annotations

import json

import pytest
import torch

from llmlab.checkpoint import load, save_checkpoint
from llmlab.errors import ConfigError
from llmlab.infer import quantize as Q
from llmlab.infer.quantize import Int4Linear, Int8Linear, quantize_model, unpack_int4

SLACK = 1e-4  # float32 rounding of sums of a few hundred terms


def random_linear(n_in=256, n_out=96, seed=0, bias=True):
    torch.manual_seed(seed)
    lin = torch.nn.Linear(n_in, n_out, bias=bias)
    lin.weight.data.mul_(torch.rand(n_out, 1) * 4)  # rows of different scales, so per-row scales matter
    return lin


def test_int8_weights_within_half_a_step():
    lin = random_linear()
    layer = Int8Linear.from_linear(lin)
    err = (layer.dequantized() - lin.weight).abs()
    assert (err <= layer.scale[:, None] / 2 + 1e-7).all()
    assert layer.qweight.dtype == torch.int8 and int(layer.qweight.abs().max()) == 127


def test_int4_pack_round_trip_and_weights_within_half_a_group_step():
    lin = random_linear()
    layer = Int4Linear.from_linear(lin, group_size=32)
    assert layer.qweight.dtype == torch.uint8 and layer.qweight.shape == (96, 128)
    codes = unpack_int4(layer.qweight)
    assert codes.min() >= -7 and codes.max() <= 7
    step = layer.scales.repeat_interleave(32, dim=1)  # [N, K]: each weight's group scale
    assert torch.equal(codes.float() * step, layer.dequantized())
    assert ((layer.dequantized() - lin.weight).abs() <= step / 2 + 1e-7).all()


def weight_only_bound(step, x):
    """[B, N]: sum_j step[n, j] / 2 * |x[b, j]|."""
    return x.abs() @ (step / 2).t()


def activation_bound(w_hat, x):
    """The kernel rounds x to one grid (uint8, zero point included): step (max(x,0) - min(x,0)) / levels."""
    levels = 127 if Q.REDUCE_RANGE else 255
    s_x = (x.max().clamp(min=0) - x.min().clamp(max=0)) / levels
    return (s_x / 2) * w_hat.abs().sum(dim=1)[None]


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_matmul_error_within_the_bound(mode, monkeypatch):
    lin = random_linear()
    layer = Int8Linear.from_linear(lin) if mode == "int8" else Int4Linear.from_linear(lin, 32)
    step = layer.scale[:, None].expand_as(lin.weight) if mode == "int8" else layer.scales.repeat_interleave(32, dim=1)
    x = torch.randn(5, 256)
    ref = lin(x).detach()
    wo = weight_only_bound(step, x)
    # The float path (GPU, MPS, CPUs without fbgemm): weight rounding only.
    monkeypatch.setattr(Q, "_fbgemm_ready", lambda x: False)
    err = (layer(x) - ref).abs()
    assert (err <= wo + SLACK).all()
    assert err.max() > 0.05 * wo.max()  # the bound is not vacuous: the error is of its order
    monkeypatch.undo()
    if not Q._fbgemm_ready(x):
        pytest.skip("no fbgemm quantised engine in this PyTorch build")
    w8, s8 = layer.int8_weight()
    w8_hat = w8.float() * s8[:, None]
    # int4 runs the int8 kernel on its weights re-rounded to a per-row int8 grid: a second half step.
    bound = wo + activation_bound(w8_hat, x) + (weight_only_bound(s8[:, None].expand_as(w8_hat), x)
                                               if mode == "int4" else 0)
    err = (layer(x) - ref).abs()
    assert (err <= bound + SLACK).all()
    assert err.max() > 0.05 * bound.max()


def test_naive_rounding_would_break_the_int8_bound():
    """A quantiser with one scale per tensor (not per row) violates the per-row bound: the test
    above can fail."""
    lin = random_linear()
    scale = lin.weight.abs().max() / 127
    w_hat = torch.round(lin.weight / scale) * scale
    x = torch.randn(5, 256)
    err = (torch.nn.functional.linear(x, w_hat, lin.bias) - lin(x)).abs().detach()
    per_row = Int8Linear.from_linear(lin).scale[:, None].expand_as(lin.weight)
    assert (err > weight_only_bound(per_row, x) + SLACK).any()


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantise_save_load_gives_identical_logits(mode, tiny_model, small_tokenizer, tmp_path):
    ids = torch.randint(0, small_tokenizer.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        fp32 = tiny_model(ids).logits
    quantize_model(tiny_model, mode)
    with torch.inference_mode():
        before = tiny_model(ids).logits
    save_checkpoint(tmp_path / "q", tiny_model, small_tokenizer)
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    assert config["quantization"]["mode"] == mode
    model, tokenizer = load(tmp_path / "q")
    assert model.quantization == config["quantization"]
    with torch.inference_mode():
        after = model(ids).logits
    assert torch.equal(before, after)
    from llmlab.checkpoint import check_weights_header, load_config

    assert check_weights_header(tmp_path / "q", load_config(tmp_path / "q")) == "F32"  # `llmlab info` reads it
    assert 0 < (after - fp32).abs().max() < 0.5 * fp32.abs().max()  # quantised, and still the same model


def test_loading_with_quantize_equals_quantising_in_memory(tiny_model, small_tokenizer, tmp_path):
    ids = torch.randint(0, small_tokenizer.vocab_size, (1, 10), generator=torch.Generator().manual_seed(1))
    save_checkpoint(tmp_path / "fp", tiny_model, small_tokenizer)
    model, _ = load(tmp_path / "fp", quantize="int8")
    quantize_model(tiny_model, "int8")
    with torch.inference_mode():
        assert torch.equal(model(ids).logits, tiny_model(ids).logits)
    assert isinstance(model.lm_head, Int8Linear) and isinstance(model.embed, torch.nn.Embedding)


def test_group_size_that_does_not_fit_is_a_one_line_error(tiny_model):
    with pytest.raises(ConfigError, match="group size 48 does not divide the 128 inputs") as exc:
        quantize_model(tiny_model, "int4", 48)
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="unknown quantisation"):
        quantize_model(tiny_model, "int3")


def run(capsys, *args):
    from llmlab.cli.main import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_generate_with_quantize_and_the_quantize_command(tiny_model, small_tokenizer, tmp_path, capsys):
    from llmlab.infer import Engine

    save_checkpoint(tmp_path / "fp", tiny_model, small_tokenizer)
    code, out, err = run(capsys, "generate", "--model", tmp_path / "fp", "--prompt", "Mia", "--temperature", "0",
                         "--max-new-tokens", "8", "--ignore-eos", "--quantize", "int8", "--json")
    assert code == 0, err
    model, tok = load(tmp_path / "fp", quantize="int8")
    expected = Engine(model, tok).generate("Mia", temperature=0, max_new_tokens=8, ignore_eos=True)
    assert json.loads(out)["token_ids"] == expected.token_ids

    code, out, err = run(capsys, "quantize", tmp_path / "fp", "--out", tmp_path / "q4", "--mode", "int4", "--json")
    assert code == 0, err
    assert json.loads(out)["bytes_after"] < json.loads(out)["bytes_before"] / 4
    code, out, err = run(capsys, "info", tmp_path / "q4", "--json")
    assert code == 0 and json.loads(out)["quantization"] == {"mode": "int4", "group_size": 32}
    code, out, err = run(capsys, "generate", "--model", tmp_path / "q4", "--prompt", "Mia", "--temperature", "0",
                         "--max-new-tokens", "4", "--json")
    assert code == 0, err and len(json.loads(out)["token_ids"]) >= 1

    code, out, err = run(capsys, "quantize", tmp_path / "fp", "--out", tmp_path / "bad", "--mode", "int4",
                         "--group-size", "48")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "group size 48" in err
    code, out, err = run(capsys, "generate", "--model", tmp_path / "q4", "--prompt", "x", "--quantize", "int8")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "saved quantised as int4" in err


def test_every_inference_command_takes_quantize():
    import click

    from llmlab.cli.main import cli

    ctx = click.Context(cli, info_name="llmlab")
    missing = []
    for path in (("generate",), ("chat",), ("experiment", "prompting"), ("eval", "perplexity"), ("eval", "tasks"),
                 ("eval", "bias"), ("eval", "hallucination"), ("eval", "safety")):
        command = cli
        for name in path:
            command = command.get_command(ctx, name)
        if "--quantize" not in {opt for p in command.params for opt in p.opts}:
            missing.append(" ".join(path))
    assert not missing
