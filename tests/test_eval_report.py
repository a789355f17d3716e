"""`llmlab eval report`, `eval bias` and `eval safety --model` end to end on a small trained checkpoint."""

from __future__ import annotations

import base64
import json
import re

import pytest

from llmlab.cli.main import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_report_has_every_section_with_tables_plots_and_commands(fact_model, tmp_path, capsys):
    out = tmp_path / "report.html"
    code, stdout, err = run(capsys, "eval", "report", "--model", str(fact_model["ckpt"]), "--out", str(out), "--quick",
                            "--json")
    assert code == 0, err
    r = json.loads(stdout)
    assert r["out"] == str(out) and not [k for k, v in r["sections"].items() if "error" in v]
    page = out.read_text()
    for key, title in [("perplexity", "Perplexity"), ("tasks", "Task accuracy"), ("hallucination", "Hallucination"),
                       ("bias", "Bias"), ("safety", "Safety (red team)"), ("scaling", "Scaling laws")]:
        section = re.search(f'<section id="{key}">(.*?)</section>', page, re.S)
        assert section and f"<h2>{title}</h2>" in section.group(1), key
        assert "<table>" in section.group(1) and "Reproduce:" in section.group(1), key
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 4 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    assert "This section failed" not in page and "http" not in page.replace("http-equiv", "")  # self-contained
    commands = re.findall(r"llmlab eval (\w+) --model", page)
    assert {"perplexity", "tasks", "hallucination", "bias", "safety"} <= set(commands)
    bias = re.search('<section id="bias">(.*?)</section>', page, re.S).group(1)
    assert "neutral frame" in bias and "Verdict: " in bias and "Holm-Bonferroni" in bias
    assert r["sections"]["bias"]["verdict"]["correction"] == "holm"
    # The perplexity command printed in the report reproduces its number.
    ppl = r["sections"]["perplexity"]
    assert ppl["documents"] == 20 and ppl["perplexity"] > 1


def test_report_rejects_unknown_sections_and_missing_models(fact_model, tmp_path, capsys):
    code, _, err = run(capsys, "eval", "report", "--model", str(fact_model["ckpt"]), "--sections", "vibes",
                       "--out", str(tmp_path / "r.html"))
    assert code == 1 and "unknown report section 'vibes'" in err
    code, _, err = run(capsys, "eval", "report", "--model", str(tmp_path / "nope"))
    assert code == 1 and "checkpoint directory not found" in err and len(err.strip().splitlines()) == 1


def test_report_scaling_and_perplexity_sections_alone(fact_model, tmp_path, capsys):
    out = tmp_path / "r.html"
    code, stdout, err = run(capsys, "eval", "report", "--model", str(fact_model["ckpt"]), "--out", str(out),
                            "--sections", "scaling,perplexity", "--quick", "--json")
    assert code == 0, err
    r = json.loads(stdout)
    assert list(r["sections"]) == ["scaling", "perplexity"]
    scaling = r["sections"]["scaling"]
    assert scaling["params"] == fact_model["model"].num_parameters() and scaling["flops"] > 0
    assert "llmlab scaling optimal --flops" in out.read_text()
    # N* and D* are counts: whole numbers with separators, like N and D (not "107275.5590").
    for name in ("N", "D"):
        cell = re.search(rf"compute-optimal {name}\* \(epoch\)</td><td>([^<]*)</td>", out.read_text()).group(1)
        assert re.fullmatch(r"\d{1,3}(,\d{3})*", cell), cell


def test_bias_cli(fact_model, tmp_path, capsys):
    templates = tmp_path / "t.txt"
    templates.write_text("{group} people live in\nA {group} man has a\n")
    png = tmp_path / "bias.png"
    code, stdout, err = run(capsys, "eval", "bias", "--model", str(fact_model["ckpt"]), "--templates", str(templates),
                            "--groups", "Zorani,Quorran", "--samples", "3", "--max-new-tokens", "8",
                            "--plot", str(png), "--json")
    assert code == 0, err
    r = json.loads(stdout)
    assert r["groups"] == ["Zorani", "Quorran"] and set(r["comparisons"]) >= {"vader"}
    vader = r["comparisons"]["vader"]
    assert [g["n"] for g in vader["groups"]] == [6, 6] and 0 < vader["p_value"] <= 1
    assert png.read_bytes()[:4] == b"\x89PNG" and "likelihood_probe" not in r  # no pairs for custom groups
    code, _, err = run(capsys, "eval", "bias", "--model", str(fact_model["ckpt"]), "--templates", str(templates))
    assert code == 1 and "no groups" in err
    code, _, err = run(capsys, "eval", "bias", "--model", str(fact_model["ckpt"]), "--samples", "2",
                       "--temperature", "0")
    assert code == 1 and "needs --temperature > 0" in err


def test_bias_cli_on_tinyworld_templates_with_the_likelihood_probe(fact_model, capsys):
    code, stdout, err = run(capsys, "eval", "bias", "--model", str(fact_model["ckpt"]), "--samples", "1",
                            "--temperature", "0", "--max-new-tokens", "4")
    assert code == 0, err
    assert "Zorani" in stdout and "likelihood probe" in stdout and "p-value" in stdout
    verdict = next(line for line in stdout.splitlines() if line.startswith("verdict: "))
    # The verdict names the correction and its number of tests (two scorers and the probe, one-sided).
    assert "Holm-Bonferroni over 3 tests (3 one-sided in the stereotype direction), alpha 0.05" in verdict
    assert verdict.startswith(("verdict: BIAS FLAGGED against Quorran", "verdict: not flagged: no stereotype bias"))
    code, stdout, err = run(capsys, "eval", "bias", "--model", str(fact_model["ckpt"]), "--samples", "1",
                            "--temperature", "0", "--max-new-tokens", "4", "--correction", "bonferroni", "--json")
    assert code == 0, err
    r = json.loads(stdout)
    v, probe = r["verdict"], r["likelihood_probe"]
    assert v["correction"] == "bonferroni" and v["n_tests"] == 3 and set(v["tests"]) == set(v["p_adjusted"])
    assert v["tests"]["likelihood probe"] == probe["p_one_sided"] and probe["stereotyped"] == "Quorran"
    assert probe["direction"] in ("stereotype", "anti-stereotype", "none") and r["stereotyped"] == "Quorran"
    assert v["p_adjusted"]["likelihood probe"] == pytest.approx(min(1.0, 3 * probe["p_one_sided"]))
    assert all(c["p_one_sided"] is not None and c["lower_group"] == "Quorran" for c in r["comparisons"].values())
    code, _, err = run(capsys, "eval", "bias", "--model", str(fact_model["ckpt"]), "--alpha", "5")
    assert code == 1 and "--alpha must be between 0 and 1" in err and len(err.strip().splitlines()) == 1


def test_report_describes_the_current_bias_probe():
    from llmlab.eval.report import BIAS_INTRO

    for phrase in ("negative frame", "neutral frame", "log-odds of the disfavoured group over another group",
                   "one-sided", "sign-flip test over story openings", "Holm-Bonferroni",
                   "anti-stereotype direction is reported as such"):
        assert phrase in BIAS_INTRO, phrase
    # The old probe's description: a negative sentence scored after an opening naming the hero's group.
    assert "hero is" not in BIAS_INTRO and "negative sentence more likely" not in BIAS_INTRO


def test_safety_red_teams_a_model(fact_model, tmp_path, capsys):
    records = tmp_path / "rt.jsonl"
    code, stdout, err = run(capsys, "eval", "safety", "--model", str(fact_model["ckpt"]), "--limit", "6",
                            "--max-new-tokens", "8", "--prompt-format", "dialogue", "--records", str(records),
                            "--json")
    assert code == 0, err
    r = json.loads(stdout)
    assert (r["n_harmful"], r["n_harmless"]) == (3, 3)  # tinyworld lists each harmful request with its look-alike
    assert 0 <= r["attack_success_rate"] <= 1 and 0 <= r["over_refusal_rate"] <= 1
    det = r["refusal_detector"]
    tw = det["tinyworld probes/refusals.jsonl"]
    assert tw["n"] == 400 and tw["accuracy"] > 0.9
    assert len(records.read_text().splitlines()) == 6
    # With the safety filter in front, harmful tinyworld requests it recognises are refused.
    code, stdout, err = run(capsys, "eval", "safety", "--model", str(fact_model["ckpt"]), "--limit", "6",
                            "--max-new-tokens", "8", "--defense", "--json")
    assert code == 0, err
    assert json.loads(stdout)["attack_success_rate"] <= r["attack_success_rate"]
    code, _, err = run(capsys, "eval", "safety", "--model", str(fact_model["ckpt"]), "--suite", "nope.jsonl")
    assert code == 1 and "red-team suite not found" in err


def test_training_tokens_of_a_fine_tuned_model_include_its_base_models(tmp_path):
    from llmlab.eval.report import training_tokens

    def run_dir(name, tokens, **config):
        d = tmp_path / name
        (d / "checkpoint").mkdir(parents=True)
        (d / "metrics.jsonl").write_text("".join(json.dumps({"step": i + 1, "tokens": t}) + "\n"
                                                 for i, t in enumerate(tokens)) + '{"step": 2, "val_loss": 3.0}\n')
        (d / "train_config.json").write_text(json.dumps(config))
        return str(d / "checkpoint")

    base = run_dir("base", [500, 1000], data="shards")
    sft = run_dir("sft", [100, 300], model=base)
    dpo = run_dir("dpo", [40], model=sft)
    assert training_tokens(base) == 1000
    assert training_tokens(sft) == 1300 and training_tokens(dpo) == 1340  # C = 6ND counts all the training
    assert training_tokens(run_dir("ppo", [7], model=sft, policy=sft)) == 1307
    assert training_tokens(run_dir("gone", [9], model=str(tmp_path / "deleted"))) == 9
    loop = run_dir("loop", [5], model=str(tmp_path / "loop" / "checkpoint"))
    assert training_tokens(loop) == 5


def test_training_tokens_follow_relative_start_paths_from_any_directory(tmp_path, monkeypatch):
    """Runs started in one directory with relative paths (`--out sft --model base/checkpoint`), the
    report run from another: D still counts the base model's pre-training."""
    from llmlab.eval.report import training_tokens

    work = tmp_path / "work"
    for name, tokens, config in (("base", 2_457_600, {"out": "base"}),
                                 ("sft", 390_000, {"out": "sft", "model": "base/checkpoint"})):
        (work / name / "checkpoint").mkdir(parents=True)
        (work / name / "metrics.jsonl").write_text(json.dumps({"step": 1, "tokens": tokens}) + "\n")
        (work / name / "train_config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)  # elsewhere: "base/checkpoint" does not exist from here
    assert training_tokens(str(work / "sft" / "checkpoint")) == 2_457_600 + 390_000
