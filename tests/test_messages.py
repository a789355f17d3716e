"""Error messages read the same everywhere: a place in a file is `FILE:LINE`, a JSON parse error
keeps its column, and an error starts on its own line even when a progress bar is on screen."""

from __future__ import annotations

import json
import re

import click
import pytest

from llmlab.errors import DataError


def _readers():
    from llmlab.cli.cmd_generate import read_prompts
    from llmlab.data.formats import read_records
    from llmlab.data.sources import iter_documents, resolve_sources
    from llmlab.eval.safety import read_jsonl_text
    from llmlab.eval.scaling import load_runs
    from llmlab.eval.tinyworld_probes import read_jsonl
    from llmlab.infer.prompt_experiment import read_jsonl as read_experiment

    return {
        "fine-tuning data": lambda p: list(read_records(p)),
        "data prepare": lambda p: list(iter_documents(resolve_sources([p]))),
        "tinyworld probes": read_jsonl,
        "experiment prompting": lambda p: read_experiment(p, ["text"]),
        "generate --prompts": lambda p: read_prompts(str(p)),
        "safety sets": lambda p: read_jsonl_text(p.read_text(), str(p)),
        "scaling fit --runs": load_runs,
    }


@pytest.mark.parametrize("reader", sorted(_readers()))
def test_every_jsonl_reader_cites_file_line_and_column(reader, tmp_path):
    path = tmp_path / "data.jsonl"
    good = {"text": "ok", "prompt": "ok", "N": 1, "D": 1, "loss": 1}
    # Line 3 (after a blank line) holds a raw tab inside a string: column 12.
    path.write_text(json.dumps(good) + "\n\n" + '{"text": "a\tb"}\n')
    with pytest.raises(DataError) as info:
        _readers()[reader](path)
    assert str(info.value) == f"{path}:3: invalid JSON (Invalid control character at column 12)"


def test_a_whole_json_file_error_gives_its_line_too(tmp_path):
    from llmlab.data.formats import read_records

    path = tmp_path / "data.json"
    path.write_text('[\n  {"prompt": "a", "completion": "b"},\n  {"prompt": "a" "completion": "b"}\n]\n')
    with pytest.raises(DataError, match=re.escape(f"{path}:3: invalid JSON (Expecting ',' delimiter at column 18)")):
        list(read_records(path))


def test_an_error_starts_on_a_fresh_line_after_a_progress_bar(capsys):
    from llmlab.cli.main import cli, main
    from llmlab.progress import progress_bar

    @click.command("failing-work")
    def failing_work():
        bar = progress_bar(total=10, desc="working")
        bar.update(3)
        raise DataError("the input broke half way")

    cli.add_command(failing_work)
    try:
        assert main(["failing-work"]) == 1
    finally:
        cli.commands.pop("failing-work")
    err = capsys.readouterr().err
    assert "working" in err  # the bar was drawn ...
    assert err.splitlines()[-1] == "error: the input broke half way"  # ... and the error has its own line
