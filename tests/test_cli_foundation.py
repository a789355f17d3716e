"""The foundation's commands: import-hf, export-hf, info, presets; --help, --json, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmlab.cli.main import main

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def hf_gpt2(tmp_path_factory, small_tokenizer):
    path = tmp_path_factory.mktemp("cli") / "hf-gpt2"
    cfg = transformers.GPT2Config(vocab_size=small_tokenizer.vocab_size, n_positions=32, n_embd=32, n_layer=1,
                                  n_head=2, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path)
    small_tokenizer.save(path)
    return path


def test_help_lists_the_foundation_commands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in ("import-hf", "export-hf", "info", "presets"):
        assert name in out
    code, out, _ = run(capsys, "import-hf", "--help")
    assert code == 0 and all(flag in out for flag in ("--out", "--trust-pickle", "--dtype", "--json"))
    code, out, _ = run(capsys, "export-hf", "--help")
    assert code == 0 and "--out" in out and "AutoModelForCausalLM" in out


def test_import_info_export_round_trip(capsys, hf_gpt2, tmp_path):
    ckpt, exported = tmp_path / "ckpt", tmp_path / "exported"
    code, out, err = run(capsys, "import-hf", hf_gpt2, "--out", ckpt, "--json")
    assert code == 0, err
    result = json.loads(out)  # exactly one JSON object
    assert result["architecture"] == "GPT2LMHeadModel" and result["tokenizer"] is True
    assert result["config"]["n_layer"] == 1 and result["out"] == str(ckpt)

    code, out, _ = run(capsys, "info", ckpt, "--json")
    info = json.loads(out)
    assert code == 0 and info["kind"] == "checkpoint" and info["dtype"] == "F32"
    assert info["parameters"]["total"] == result["parameters"]
    assert info["tokenizer_vocab_size"] == result["config"]["vocab_size"]

    code, out, err = run(capsys, "export-hf", ckpt, "--out", exported)
    assert code == 0, err
    assert "GPT2LMHeadModel" in out
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(exported).eval()
    original = transformers.AutoModelForCausalLM.from_pretrained(hf_gpt2).eval()
    ids = torch.randint(0, 400, (1, 12))
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, original(ids).logits, atol=1e-5)


def test_import_dtype_flag(capsys, hf_gpt2, tmp_path):
    code, out, err = run(capsys, "import-hf", hf_gpt2, "--out", tmp_path / "half", "--dtype", "float16")
    assert code == 0, err
    assert "float16" in out
    code, out, _ = run(capsys, "info", tmp_path / "half", "--json")
    assert json.loads(out)["dtype"] == "F16"


def test_info_on_presets(capsys):
    code, out, _ = run(capsys, "info", "gpt3-175b", "--json")
    info = json.loads(out)
    assert code == 0 and info["kind"] == "preset" and info["paper_parameters"] == 175e9
    assert abs(info["parameters"]["total"] / 175e9 - 1) < 0.02
    assert info["flops_per_token"]["training"] > 6 * info["parameters"]["non_embedding"]
    code, out, _ = run(capsys, "info", "tiny")
    assert code == 0 and "non-embedding" in out and "FLOPs" in out
    code, out, _ = run(capsys, "info", "tiny", "--seq-len", "16", "--json")
    assert json.loads(out)["flops_per_token"]["seq_len"] == 16


def test_presets_table_and_json(capsys):
    code, out, _ = run(capsys, "presets")
    assert code == 0 and "tiny" in out and "gpt3-175b" in out and "1.05M" in out
    code, out, _ = run(capsys, "presets", "--json")
    rows = {r["name"]: r for r in json.loads(out)["presets"]}
    assert rows["tiny"]["parameters"]["total"] == 1049728 and "gpt2-12m" in rows


def test_errors_are_one_line(capsys, tmp_path, hf_gpt2):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(*run(capsys, "info", "gpt5")[::2], "neither a checkpoint directory nor a preset")
    assert_one_line_error(*run(capsys, "info", tmp_path / "empty")[::2], "not an llmlab checkpoint")
    assert_one_line_error(*run(capsys, "info", hf_gpt2)[::2], "llmlab import-hf")
    assert_one_line_error(*run(capsys, "import-hf", tmp_path / "empty", "--out", tmp_path / "x")[::2], "no config.json")
    assert_one_line_error(*run(capsys, "export-hf", tmp_path / "empty", "--out", tmp_path / "y")[::2])
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    code, _, err = run(capsys, "import-hf", hf_gpt2)  # --out missing: a usage error, not a crash
    assert code == 2 and "--out" in err and "Traceback" not in err


def test_console_script_prints_no_traceback(tmp_path):
    # The real entry point, as a user runs it.
    llmlab = Path(sys.executable).with_name("llmlab")
    cmd = [str(llmlab)] if llmlab.exists() else [sys.executable, "-m", "llmlab.cli.main"]
    env = {k: v for k, v in os.environ.items() if k != "LLMLAB_DEBUG"}
    proc = subprocess.run([*cmd, "import-hf", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: ") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _leaf_commands(command, path=("llmlab",)):
    import click

    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path[-1])
        for name in command.list_commands(ctx):
            yield from _leaf_commands(command.get_command(ctx, name), (*path, name))
    else:
        yield " ".join(path), command


def test_every_option_of_every_command_has_help():
    from llmlab.cli.main import cli

    undocumented = [
        f"{name} --{p.name.replace('_', '-')}"
        for name, command in _leaf_commands(cli)
        for p in command.params
        if getattr(p, "help", "x") == "" or (p.param_type_name == "option" and not p.help)
    ]
    assert not undocumented, undocumented


def test_info_checks_the_weights_against_the_config(capsys, hf_gpt2, tmp_path):
    # info reads only the header, but must not print counts that the weights contradict.
    ckpt = tmp_path / "ckpt"
    assert run(capsys, "import-hf", hf_gpt2, "--out", ckpt)[0] == 0
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "d_model": 64}))
    assert_one_line_error(*run(capsys, "info", ckpt)[::2], "has shape", "config implies")
    (ckpt / "config.json").write_text(json.dumps(config))
    assert run(capsys, "info", ckpt)[0] == 0
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    assert_one_line_error(*run(capsys, "info", ckpt)[::2], "corrupt or truncated")


def test_tables_piped_to_a_file_keep_every_cell_whole(capsys):
    from llmlab.cli.common import print_table

    names = [f"tinyworld_arithmetic_{i}" for i in (1, 2)]
    print_table([[n, "exact_match", 30, 0, 0.0, "0.00-0.11", "-"] for n in names],
                ["task", "metric", "n", "shots", "value", "95% CI", "chance"], title="tasks")
    out = capsys.readouterr().out
    assert all(n in out for n in names) and "exact_match" in out and "…" not in out


def test_quickstart_refuses_settings_its_folder_would_silently_ignore(capsys, tmp_path):
    out = tmp_path / "qs"
    (out / "tinyworld").mkdir(parents=True)
    (out / "data").mkdir()
    (out / "tinyworld" / "manifest.json").write_text(json.dumps({"tokens_requested": 300_000, "seed": 0}))
    (out / "data" / "manifest.json").write_text(json.dumps({"vocab_size": 2048}))
    assert main(["quickstart", "--out", str(out)]) == 1  # default --tokens 4M
    err = capsys.readouterr().err
    assert f"{out} was made with --tokens 300,000;" in err and "--fresh" in err and len(err.strip().splitlines()) == 1
    assert main(["quickstart", "--out", str(out), "--tokens", "300k", "--vocab-size", "4096"]) == 1
    assert "made with --vocab-size 2048;" in capsys.readouterr().err


def test_openmp_threads_sleep_only_on_a_busy_machine(monkeypatch, tmp_path):
    import builtins

    from llmlab.cli import main as entry

    real_open = builtins.open

    def fake_proc(running):
        def fake_open(path, *args, **kwargs):
            if path == "/proc/loadavg":
                (tmp_path / "loadavg").write_text(f"0.50 0.40 0.30 {running}/300 4242\n")
                return real_open(tmp_path / "loadavg", *args, **kwargs)
            return real_open(path, *args, **kwargs)
        return fake_open

    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.setattr(builtins, "open", fake_proc(1))  # only ourselves runnable
    assert not entry._machine_is_busy()
    monkeypatch.setattr(builtins, "open", fake_proc(3))  # two other tasks want a core
    assert entry._machine_is_busy()
    monkeypatch.setattr(builtins, "open", fake_proc(1))
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")  # parallel test workers share the cores
    assert entry._machine_is_busy()
