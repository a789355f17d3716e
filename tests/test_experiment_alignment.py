"""`llmlab experiment alignment`: the alignment recipe as a command, with a flag per AlignmentConfig
field; `python -m llmlab.recipes.alignment` is the same command."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

from llmlab.cli.main import cli, main
from llmlab.recipes import alignment


def test_every_config_field_is_a_flag():
    params = {p.name: p for p in cli.commands["experiment"].get_command(None, "alignment").params}
    assert {f.name for f in dataclasses.fields(alignment.AlignmentConfig)} <= set(params)
    assert params["sft_max_steps"].opts == ["--sft-max-steps"] and params["frontier_kl"].opts == ["--frontier-kl"]


def test_flags_build_the_config_the_recipe_runs(monkeypatch, tmp_path, capsys):
    seen = {}

    def run(self):
        seen["cfg"] = self.cfg
        self.log("[sft]")
        return {"sft": {"accuracy": 0.5}, "commands": ["llmlab sft ..."]}

    monkeypatch.setattr(alignment.Recipe, "run", run)
    args = ["experiment", "alignment", "--base", "b", "--tinyworld", "t", "--out", str(tmp_path / "a"),
            "--stages", "sft,reward", "--seed", "3", "--frontier-kl", "0.2,0.05", "--sft-max-steps", "12",
            "--dpo-max-steps", "none", "--dpo-beta", "0.3"]
    assert main(args) == 0
    cfg = seen["cfg"]
    assert (cfg.base, cfg.tinyworld, cfg.stages, cfg.seed) == ("b", "t", ("sft", "reward"), 3)
    assert cfg.frontier_kl == (0.2, 0.05) and cfg.sft_max_steps == 12 and cfg.dpo_max_steps is None
    assert cfg.dpo_beta == 0.3 and cfg.frontier_beta == alignment.AlignmentConfig.frontier_beta
    out = capsys.readouterr().out
    assert out.startswith("[sft]") and '"accuracy": 0.5' in out
    assert main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["sft"] == {"accuracy": 0.5} and "[sft]" in captured.err
    assert main([*args, "--frontier-kl", "x"]) == 2


def test_the_module_form_is_the_same_command():
    out = subprocess.run([sys.executable, "-m", "llmlab.recipes.alignment", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "llmlab experiment alignment" in out and "--dpo-rpo-alpha" in out and "--stages" in out
