"""Issue 11 (outputs): nothing a user has is lost. Outputs never replace what llmlab did not make,
an unwritable --out fails in one line before any work, and what is written respects the umask."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import llmlab
from llmlab.checkpoint import atomic_directory, atomic_write_text, save_checkpoint
from llmlab.cli.main import main
from llmlab.errors import DataError, OutputError
from llmlab.outputs import check_writable

CORPUS = [
    "Once upon a time, Mia had a small dog named Rex. Rex liked to run in the park.",
    "Tom lives in Pinebrook. He works as a baker and his favourite food is soup.",
    "The shop was clean and the bread was fresh. I liked it a lot!",
] * 4


def run(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], err


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i, text in enumerate(CORPUS):
        (folder / f"doc{i:02d}.txt").write_text(text)
    return folder


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


def prepare_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["data", "prepare", "--input", corpus, "--out", out, "--train-tokenizer", "--vocab-size", "300",
            "--no-progress", *extra]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------------- atomic_directory
def test_atomic_directory_refuses_to_replace_what_the_caller_has_not_checked(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="already exists") as info:
        with atomic_directory(mine) as tmp:
            (tmp / "new.txt").write_text("x")
    assert "\n" not in str(info.value)
    assert snapshot(mine) == {"notes.txt": b"keep me"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary left behind
    # The caller that checked the directory is its own may replace it, as a whole.
    with atomic_directory(mine, replace=True) as tmp:
        (tmp / "new.txt").write_text("x")
    assert snapshot(mine) == {"new.txt": b"x"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_atomic_directory_accepts_an_empty_directory_but_never_a_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with atomic_directory(tmp_path / "empty") as tmp:
        (tmp / "a").write_text("a")
    assert snapshot(tmp_path / "empty") == {"a": b"a"}
    (tmp_path / "file").write_text("data")
    with pytest.raises(OutputError, match="not a directory"):
        with atomic_directory(tmp_path / "file", replace=True):
            pass
    assert (tmp_path / "file").read_text() == "data"


def test_atomic_directory_refuses_what_appeared_during_the_work(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="already exists"):
        with atomic_directory(out) as tmp:
            (tmp / "ours").write_text("x")
            out.mkdir()
            (out / "theirs.txt").write_text("keep me")
    assert snapshot(out) == {"theirs.txt": b"keep me"}


def test_save_checkpoint_refuses_a_users_folder(tmp_path, tiny_model):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("keep me")
    with pytest.raises(OutputError, match="refusing to replace"):
        llmlab.save_checkpoint(folder, tiny_model)
    assert snapshot(folder) == {"chapter1.tex": b"keep me"}


def test_save_checkpoint_under_a_file_is_one_line(tmp_path, tiny_model):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot create") as info:
        save_checkpoint(tmp_path / "file" / "ckpt", tiny_model)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------- umask
@pytest.mark.parametrize("mask, dir_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_outputs_get_the_modes_of_the_umask(tmp_path, tiny_model, small_tokenizer, corpus, umask, capsys,
                                            mask, dir_mode, file_mode):
    umask(mask)
    ckpt = save_checkpoint(tmp_path / "ckpt", tiny_model, small_tokenizer)
    atomic_write_text(tmp_path / "metrics.jsonl", "{}\n")
    code, err = run(capsys, *prepare_args(corpus, tmp_path / "shards"))
    assert code == 0, err
    for root in (ckpt, tmp_path / "shards"):
        assert mode(root) == dir_mode, root
        for p in root.rglob("*"):
            assert mode(p) == (dir_mode if p.is_dir() else file_mode), p
    assert mode(ckpt / "model.safetensors") == file_mode  # safetensors writes 0600 files by itself
    assert mode(tmp_path / "metrics.jsonl") == file_mode


# ---------------------------------------------------------------------------- data prepare
def test_prepare_refuses_an_unrelated_folder(tmp_path, corpus, capsys):
    mine = tmp_path / "mine"
    (mine / "photos").mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    (mine / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    before = snapshot(mine)
    code, err = run(capsys, *prepare_args(corpus, mine))
    assert_one_line_error(code, err, "not an llmlab dataset")
    assert snapshot(mine) == before
    code, err = run(capsys, *prepare_args(corpus, mine, "--overwrite"))  # --overwrite is for datasets only
    assert_one_line_error(code, err, "not an llmlab dataset")
    assert snapshot(mine) == before


def test_prepare_refuses_an_output_that_overlaps_an_input(tmp_path, corpus, capsys):
    before = snapshot(corpus)
    code, err = run(capsys, *prepare_args(corpus, corpus))
    assert_one_line_error(code, err, "overlaps the input")
    code, err = run(capsys, *prepare_args(corpus, corpus / "shards"))  # inside the input
    assert_one_line_error(code, err, "overlaps the input")
    code, err = run(capsys, *prepare_args(corpus / "doc00.txt", tmp_path))  # contains the input
    assert_one_line_error(code, err, "overlaps the input")
    code, err = run(capsys, "data", "prepare", "--input", f"{corpus}/*.txt", "--out", corpus, "--train-tokenizer",
                    "--no-progress")
    assert_one_line_error(code, err, "overlaps the input")
    code, err = run(capsys, *prepare_args(tmp_path / "elsewhere", corpus, "--val", corpus / "doc01.txt"))
    assert_one_line_error(code, err, "overlaps the input")
    assert snapshot(corpus) == before and sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


def test_overlap_covers_saved_dataset_splits_and_ignores_the_hub(tmp_path):
    from llmlab.data.shards import check_destination

    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "dataset_dict.json").write_text("{}")
    with pytest.raises(OutputError, match="overlaps the input"):
        check_destination(ds / "shards", [f"{ds}:train"])
    check_destination(tmp_path / "hf", ["hf:hf"])  # a hub name is not a local path


def test_prepare_replaces_an_earlier_dataset_only_with_overwrite(tmp_path, corpus, capsys):
    out = tmp_path / "shards"
    assert run(capsys, *prepare_args(corpus, out))[0] == 0
    before = snapshot(out)
    code, err = run(capsys, *prepare_args(corpus, out, "--vocab-size", "280"))
    assert_one_line_error(code, err, "already holds a prepared dataset", "--overwrite")
    assert snapshot(out) == before
    code, err = run(capsys, *prepare_args(corpus, out, "--vocab-size", "280", "--overwrite"))
    assert code == 0, err
    assert json.loads((out / "manifest.json").read_text())["vocab_size"] <= 280
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "shards"]


def test_prepare_checks_its_output_before_training_a_tokenizer(tmp_path, corpus, capsys, monkeypatch):
    from llmlab.tokenizer import Tokenizer

    def no_training(*args, **kwargs):
        raise AssertionError("the tokenizer was trained before --out was checked")

    monkeypatch.setattr(Tokenizer, "train", no_training)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("x")
    assert_one_line_error(*run(capsys, *prepare_args(corpus, tmp_path / "mine")), "not an llmlab dataset")
    assert_one_line_error(*run(capsys, *prepare_args(corpus, corpus)), "overlaps the input")


def test_tinyworld_does_not_replace_a_prepared_dataset(tmp_path, corpus, capsys):
    from llmlab.data.tinyworld import generate_dataset

    out = tmp_path / "shards"
    assert run(capsys, *prepare_args(corpus, out))[0] == 0  # it has a manifest.json too
    before = snapshot(out)
    with pytest.raises(DataError, match="not a tinyworld dataset"):
        generate_dataset(out, tokens=1000, progress=False, workers=1)
    assert snapshot(out) == before


# ---------------------------------------------------------------------------- writable before the work
@pytest.fixture
def blocker(tmp_path) -> Path:
    """A file, so that `blocker/anything` can never be created (also as root)."""
    path = tmp_path / "a_file"
    path.write_text("x")
    return path


def test_check_writable(tmp_path, blocker, monkeypatch):
    with pytest.raises(OutputError, match="is a file; a directory is expected"):
        check_writable(blocker, kind="dir", flag="--out")
    with pytest.raises(OutputError, match="is a directory; give a file path"):
        check_writable(tmp_path, kind="file", flag="--out")
    with pytest.raises(OutputError, match="a_file is a file, not a directory"):
        check_writable(blocker / "deeper" / "out", kind="dir")
    check_writable(tmp_path / "new" / "deeper", kind="dir")  # a parent that can be created is fine
    assert not (tmp_path / "new").exists()  # and nothing is created by the check
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    with pytest.raises(OutputError, match="not writable"):
        check_writable(tmp_path / "new", kind="dir")
    with pytest.raises(OutputError, match="permission denied"):
        check_writable(tmp_path, kind="dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_check_writable_read_only_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            check_writable(locked / "out", kind="dir")
    finally:
        locked.chmod(0o700)


def test_eval_report_checks_its_output_before_evaluating(tmp_path, blocker, capsys, monkeypatch, tiny_model,
                                                         small_tokenizer):
    import llmlab.eval.report as report

    ckpt = save_checkpoint(tmp_path / "ckpt", tiny_model, small_tokenizer)
    calls = []
    monkeypatch.setattr(report, "build_report", lambda *a, **k: calls.append(a) or {})
    code, err = run(capsys, "eval", "report", "--model", ckpt, "--out", blocker / "report.html", "--quick")
    assert_one_line_error(code, err, "cannot create --out", "is a file")
    code, err = run(capsys, "eval", "report", "--model", ckpt, "--out", tmp_path, "--quick")
    assert_one_line_error(code, err, "is a directory")
    assert calls == []


@pytest.mark.parametrize("command", [
    ["data", "tinyworld", "--tokens", "1000", "--out", "{bad}"],
    ["quickstart", "--out", "{bad}"],
    ["import-hf", "{tmp}", "--out", "{bad}"],
    ["export-hf", "{tmp}", "--out", "{bad}"],
    ["export-gguf", "{tmp}", "--out", "{bad}/m.gguf"],
    ["experiment", "prompting", "--model", "{tmp}", "--out", "{bad}"],
    ["eval", "safety", "--texts", "{tmp}/t.txt", "--out", "{bad}/verdicts.jsonl"],
    ["eval", "tasks", "--model", "{tmp}", "--samples-out", "{bad}/s.jsonl"],
    ["eval", "hallucination", "--model", "{tmp}", "--plot", "{bad}/h.png"],
    ["pretrain", "--data", "{tmp}", "--preset", "tiny", "--out", "{bad}"],
    ["sft", "--model", "{tmp}", "--data", "tinyworld", "--out", "{bad}"],
    ["dpo", "--model", "{tmp}", "--data", "tinyworld", "--out", "{bad}"],
])
def test_every_output_option_is_checked_in_one_line(command, tmp_path, blocker, capsys):
    # {bad} lies under a file: no command may start its work, and none may crash with an OSError.
    args = [a.format(bad=blocker / "sub", tmp=tmp_path) for a in command]
    code, err = run(capsys, *args)
    assert_one_line_error(code, err, "cannot create", "is a file")


def test_training_output_is_checked_before_the_data_loads(tmp_path, blocker, capsys, monkeypatch):
    import llmlab.train.pretrain as pretrain

    monkeypatch.setattr(pretrain, "run_pretraining", lambda *a, **k: pytest.fail("training started"))
    code, err = run(capsys, "pretrain", "--data", tmp_path, "--preset", "tiny", "--out", blocker)
    assert_one_line_error(code, err, "--out", "is a file")


# ---------------------------------------------------------------------------- quickstart --fresh
def test_quickstart_fresh_deletes_only_a_quickstart_folder(tmp_path, capsys):
    from llmlab.recipes.quickstart import check_fresh

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, err = run(capsys, "quickstart", "--out", mine, "--fresh")
    assert_one_line_error(code, err, "notes.txt", "quickstart did not write")
    assert snapshot(mine) == {"notes.txt": b"keep me"}
    ours = tmp_path / "qs"
    for name in ("tinyworld", "data", "run", ".data.tmp-x1"):
        (ours / name).mkdir(parents=True)
    check_fresh(ours)  # its own stages and temporaries: may be deleted
