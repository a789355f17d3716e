"""Checkpoint directories: the files, atomic replacement, exact round trips, and one-line errors for
everything that is not a sound checkpoint."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import llmlab
from llmlab.checkpoint import load_config, save_checkpoint
from llmlab.errors import CheckpointError

FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"}


@pytest.fixture
def ckpt(tmp_path, tiny_model, small_tokenizer):
    return save_checkpoint(tmp_path / "ckpt", tiny_model, small_tokenizer)


def one_line(info) -> str:
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_checkpoint_files_and_exact_round_trip(ckpt, tiny_model, small_tokenizer):
    assert {p.name for p in ckpt.iterdir()} == FILES
    config = json.loads((ckpt / "config.json").read_text())
    assert config["format"] == "llmlab" and config["n_layer"] == tiny_model.config.n_layer
    gen = json.loads((ckpt / "generation_config.json").read_text())
    eos = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    assert small_tokenizer.eos_token_id in eos
    model, tok = llmlab.load(ckpt)
    assert not model.training and model.config == tiny_model.config
    assert model.lm_head.weight is model.embed.weight  # tie restored, stored once
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, tiny_model(ids).logits)
    assert tok.fingerprint() == small_tokenizer.fingerprint()
    assert tok.model_max_length == model.config.context_length
    from safetensors import safe_open

    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        assert "lm_head.weight" not in f.keys()


def test_dtype_is_kept(tmp_path, tiny_model):
    save_checkpoint(tmp_path / "bf16", tiny_model.to(torch.bfloat16))
    model, tok = llmlab.load(tmp_path / "bf16")
    assert tok is None and next(model.parameters()).dtype == torch.bfloat16
    assert llmlab.load(tmp_path / "bf16", dtype=torch.float32)[0].embed.weight.dtype == torch.float32


def test_save_replaces_atomically_and_cleans_up(tmp_path, tiny_model, ckpt):
    before = (ckpt / "model.safetensors").read_bytes()

    def crash(tmp):
        (tmp / "trainer_state.json").write_text("{}")
        raise RuntimeError("disk full")

    with torch.no_grad():
        tiny_model.embed.weight.add_(1.0)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(ckpt, tiny_model, write_extra=crash, replace=True)
    # The failed save left the old checkpoint untouched and no temporary directories behind.
    assert (ckpt / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    save_checkpoint(ckpt, tiny_model, replace=True)  # the caller's own checkpoint: it may replace it
    assert (ckpt / "model.safetensors").read_bytes() != before
    assert not (ckpt / "tokenizer.json").exists()  # replaced as a whole, not merged
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_truncated_weights(ckpt):
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    for cut in (len(data) - 100, 40, 3):
        weights.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
            llmlab.load(ckpt)
        one_line(info)


def test_missing_weights(ckpt):
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights file missing") as info:
        llmlab.load(ckpt)
    one_line(info)


@pytest.mark.parametrize("change, message", [
    ({"n_layer": 5}, "lacks weight 'blocks.4"),
    ({"n_layer": 3}, "unexpected weight 'blocks.3"),
    ({"d_ff": 512}, "has shape .* but the config implies"),
    ({"tie_embeddings": False}, "lacks weight 'lm_head.weight'"),
    ({"n_layer": 0}, "n_layer must be positive"),
    ({"layers": 4}, "unknown model config field"),
])
def test_mismatched_config_and_weights(ckpt, change, message):
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(CheckpointError, match=message) as info:
        llmlab.load(ckpt)
    one_line(info)


def test_not_a_checkpoint(tmp_path, ckpt):
    (tmp_path / "empty").mkdir()
    cases = {
        tmp_path / "empty": "not an llmlab checkpoint: it has no config.json",
        tmp_path / "missing": "checkpoint directory not found",
        ckpt / "config.json": "is a file",
    }
    for path, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as info:
            llmlab.load(path)
        one_line(info)
    with pytest.raises(CheckpointError, match=r"it is a run directory: use .*checkpoint\)"):
        llmlab.load(_as_run_dir(tmp_path, ckpt))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"lr": 0.1}))
    with pytest.raises(CheckpointError, match="not an llmlab config"):
        load_config(tmp_path / "other")
    (tmp_path / "other" / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_config(tmp_path / "other")


def _as_run_dir(tmp_path, ckpt):
    """A run directory (what training commands write) holding a copy of `ckpt` as checkpoint/."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(ckpt, run / "checkpoint")
    return run


def test_hugging_face_folder_passed_to_load(tmp_path):
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    with pytest.raises(CheckpointError, match=r"Hugging Face model folder.*llmlab import-hf") as info:
        llmlab.load(folder)
    one_line(info)


def test_tokenizer_larger_than_model_vocab(tmp_path, small_tokenizer):
    from llmlab.config import preset
    from llmlab.model import TransformerLM

    model = TransformerLM(preset("tiny", vocab_size=small_tokenizer.vocab_size - 10, n_layer=1))
    save_checkpoint(tmp_path / "c", model, small_tokenizer)
    with pytest.raises(CheckpointError, match="do not belong together") as info:
        llmlab.load(tmp_path / "c")
    one_line(info)


def test_interrupted_save_is_pointed_out(tmp_path, ckpt):
    # Simulate a crash between the two renames of a replacement: only the ".old" copy survives.
    shutil.move(str(ckpt), str(tmp_path / ".ckpt.old-123"))
    with pytest.raises(CheckpointError, match="interrupted"):
        llmlab.load(ckpt)


def test_unavailable_or_unknown_device_is_a_clear_error():
    import torch

    from llmlab.checkpoint import resolve_device
    from llmlab.errors import ConfigError

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is available"):
            resolve_device("cuda:0")


def test_one_loader_requires_a_tokenizer_when_asked(tmp_path, tiny_model, capsys):
    """`load(..., require_tokenizer=True)` is the check every text command makes (generate, chat,
    eval, experiments, the report): one line naming the missing file."""
    from llmlab.checkpoint import load
    from llmlab.cli.main import main

    save_checkpoint(tmp_path / "bare", tiny_model)
    assert load(tmp_path / "bare")[1] is None
    with pytest.raises(CheckpointError, match="has no tokenizer.json") as info:
        load(tmp_path / "bare", require_tokenizer=True)
    one_line(info)
    for argv in (["generate", "--prompt", "x"], ["eval", "perplexity", "--input", __file__]):
        assert main([*argv, "--model", str(tmp_path / "bare")]) == 1
        assert "has no tokenizer.json" in capsys.readouterr().err
