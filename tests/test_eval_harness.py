"""lm-evaluation-harness: llmlab's task scores equal lm-eval's on the same model and tasks (prompts,
few-shot draws, per-item log-likelihoods, acc and acc_norm, generations), the `llmlab` model class
equals lm-eval's own HF model class on the exported checkpoint, the generated task folder, the CLI,
and the one-line error without lm-eval installed."""

from __future__ import annotations

import importlib.util
import json
import random
import sys

import pytest

from llmlab.cli.main import main
from llmlab.errors import ConfigError, OutputError

HAVE_LM_EVAL = importlib.util.find_spec("lm_eval") is not None
needs_lm_eval = pytest.mark.skipif(not HAVE_LM_EVAL, reason="lm-evaluation-harness is not installed "
                                   "(pip install 'llmlab[harness]'); the dev extra installs it")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """What `llmlab eval harness` sets: local task files only, never the hub."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def probes():
    from llmlab.eval.tinyworld_probes import TinyworldProbes

    return TinyworldProbes(seed=0)


# ---------------------------------------------------------------------------- the test
@needs_lm_eval
def test_harness_scores_equal_llmlab_task_scores(finetune_checkpoint, probes, tmp_path):
    import llmlab
    from llmlab.eval.harness import compare_with_llmlab, run_harness
    from llmlab.eval.tasks import evaluate_task, tinyworld_task

    model, tok = llmlab.load(finetune_checkpoint, require_tokenizer=True)  # random, 2 layers, 96 tokens

    names = ["tinyworld_reviews", "tinyworld_facts_mc", "tinyworld_facts_gen", "tinyworld_arithmetic_1"]
    tasks = [tinyworld_task(n, probes) for n in names]
    k, limit = 2, 12
    harness = run_harness(model, tok, tasks, tmp_path / "tasks", num_fewshot=k, limit=limit)
    own = [(t, evaluate_task(model, tok, t, k, limit=limit)) for t in tasks]
    for task, mine in own:
        theirs = harness["tasks"][task.name]
        assert (theirs["n"], theirs["shots"]) == (limit, k)
        samples = sorted(theirs["samples"], key=lambda s: s["doc_id"])
        # The same prompts: description, k examples drawn by lm-eval's sampler, the query.
        assert [s["prompt"] for s in samples] == [s["prompt"] for s in mine.samples]
        assert all(s["prompt"].count(task.fewshot_delimiter) >= k for s in samples)
        for metric, value in mine.metrics.items():
            assert theirs["metrics"][metric] == pytest.approx(value, abs=1e-6), (task.name, metric)
        for a, b in zip(samples, mine.samples):
            assert all(a[m] == b[m] for m in mine.metrics)
            if task.kind == "multiple_choice":
                assert a["loglikelihoods"] == pytest.approx(b["loglikelihoods"], rel=1e-5, abs=1e-4)
            else:
                assert a["output"] == b["output"]
    # The multiple-choice items are not all alike (acc and acc_norm differ somewhere), so the
    # comparison above really tells the two normalisations apart.
    mc = [s for t, r in own if t.kind == "multiple_choice" for s in r.samples]
    assert any(s["pred"] != s["pred_norm"] for s in mc) and 0 < sum(s["acc"] for s in mc) < len(mc)
    summary = compare_with_llmlab(harness, own)
    assert all(row["same_items"] == 1.0 and row["same_prompt"] == 1.0 for row in summary.values())


def _draws_equal(task, k, seed=1234):
    """Task.fewshot_examples against lm-eval's ContextSampler, document after document, one seed."""
    from lm_eval.api.samplers import ContextSampler

    from llmlab.eval.harness_tasks import harness_doc

    pool = [harness_doc(task, d) for d in task.fewshot_docs]
    sampler = ContextSampler(pool, rnd=seed)
    shared = task.fewshot_docs is task.docs
    rng = random.Random(seed)
    for doc in task.docs:
        mine = [harness_doc(task, d) for d in task.fewshot_examples(doc, k, rng)]
        theirs = sampler.sample(n=k, eval_doc=harness_doc(task, doc) if shared else None)
        assert mine == list(theirs)
        assert not shared or harness_doc(task, doc) not in mine


@needs_lm_eval
@pytest.mark.parametrize("case", ["separate", "shared", "duplicates"])
def test_fewshot_draws_equal_lm_evals_sampler_cases(case):
    from llmlab.eval.tasks import Task

    docs = [{"query": f"Q{i}", "choices": ["yes", "no"], "gold": i % 2} for i in range(30)]
    if case == "separate":
        pool = [{"query": f"T{i}", "choices": ["yes", "no"], "gold": i % 2} for i in range(9)]
        task = Task("t", "multiple_choice", docs, pool)
    else:
        if case == "duplicates":  # three copies of Q0: drawing two of them leaves too few, lm-eval redraws
            docs = docs[:6] + [dict(docs[0]), dict(docs[0])]
        task = Task("t", "multiple_choice", docs, docs)
    for k in (1, 3, 5):
        _draws_equal(task, k)


# ---------------------------------------------------------------------------- the model class
@needs_lm_eval
def test_model_class_equals_lm_evals_hf_model(finetune_checkpoint, tmp_path):
    """The `llmlab` LM and lm-eval's own HFLM on the exported checkpoint give the same answers to the
    same requests: log-likelihoods (an empty context, a context ending in a space), rolling
    log-likelihoods of a text longer than the context window, and greedy generations with stops."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    import llmlab
    from llmlab.eval.harness import LLMLabLM
    from llmlab.interop.hf import export_hf

    export_hf(finetune_checkpoint, tmp_path / "hf")
    model, tok = llmlab.load(finetune_checkpoint, require_tokenizer=True)
    ours = LLMLabLM(model=model, tokenizer=tok, batch_size=3)
    ref = HFLM(pretrained=str(tmp_path / "hf"), device="cpu", batch_size=4)

    ll = [Instance("loglikelihood", {}, args, i) for i, args in enumerate([
        ("Tom lives in", " Pinebrook."), ("Sam has 3 apples.", " Answer: 7"), ("", "Once upon a time"),
        ("The shop was clean and ", "the bread"), ("User: What is the name of Mia's dog?\nAssistant:", " Rex")])]
    mine, theirs = ours.loglikelihood(ll, disable_tqdm=True), ref.loglikelihood(ll, disable_tqdm=True)
    assert [g for _, g in mine] == [g for _, g in theirs]
    assert [x for x, _ in mine] == pytest.approx([x for x, _ in theirs], rel=1e-5)

    long = " ".join(["Once upon a time, Mia had a small dog named Rex. Rex liked to run in the park.",
                      "Tom lives in Pinebrook. He works as a baker and his favourite food is soup."] * 3)
    assert len(tok.encode(long, add_special_tokens=False)) > model.config.context_length  # several windows
    roll = [Instance("loglikelihood_rolling", {}, (text,), 0) for text in (long, "Mia had a dog.")]
    assert ours.loglikelihood_rolling(roll, disable_tqdm=True) == pytest.approx(
        ref.loglikelihood_rolling(roll, disable_tqdm=True), rel=1e-5)

    gen = [Instance("generate_until", {}, (ctx, {"until": until, "max_gen_toks": 10, "do_sample": False}), 0)
           for ctx, until in [("Once upon a time", ["\n"]), ("Sam has 3 apples.", [" "]), ("Tom", ["zzz"])]]
    outs = ours.generate_until(gen, disable_tqdm=True)
    assert outs == ref.generate_until(gen, disable_tqdm=True)
    assert " " not in outs[1]  # cut at the stop string


# ---------------------------------------------------------------------------- the task folder
@needs_lm_eval
def test_task_folder_loads_in_lm_eval(probes, tmp_path):
    from lm_eval.tasks import TaskManager

    from llmlab.eval.harness_tasks import write_task_folder
    from llmlab.eval.tasks import tinyworld_task

    reviews, arith = tinyworld_task("tinyworld_reviews", probes), tinyworld_task("tinyworld_arithmetic_2", probes)
    folder = tmp_path / "tasks"
    assert write_task_folder([reviews, arith], folder) == ["tinyworld_reviews", "tinyworld_arithmetic_2"]
    lines = lambda path: (folder / "data" / path).read_text(encoding="utf-8").splitlines()
    assert len(lines("tinyworld_reviews/test.jsonl")) == len(reviews.docs)
    assert len(lines("tinyworld_reviews/train.jsonl")) == len(reviews.fewshot_docs)
    assert not (folder / "data/tinyworld_arithmetic_2/train.jsonl").exists()  # its pool is its documents
    loaded = TaskManager(include_path=str(folder), include_defaults=False).load(["tinyworld_reviews",
                                                                                 "tinyworld_arithmetic_2"])
    tasks = loaded["tasks"]  # lm-eval's flat {name: Task}
    r, a = tasks["tinyworld_reviews"].config, tasks["tinyworld_arithmetic_2"].config
    assert (r.output_type, r.num_fewshot, r.fewshot_split, r.description) == \
        ("multiple_choice", 4, "train", "Classify the sentiment of these texts:\n\n")
    assert [m["metric"] for m in r.metric_list] == ["acc", "acc_norm"]
    assert (a.output_type, a.num_fewshot, a.fewshot_split, a.target_delimiter) == ("generate_until", None, "test", "\n")
    assert a.generation_kwargs["until"] == ["\n\n"] and a.generation_kwargs["max_gen_toks"] == arith.max_new_tokens
    assert callable(a.process_results)
    doc = json.loads(lines("tinyworld_arithmetic_2/test.jsonl")[0])
    assert a.process_results(doc, [doc["target"]]) == {"exact_match": 1.0, "contains": 1.0}  # its own solution

    write_task_folder([reviews], folder)  # its own folder: rewritten
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not written by llmlab"):
        write_task_folder([reviews], other)
    with pytest.raises(ConfigError, match="two tasks are named"):
        write_task_folder([reviews, reviews], tmp_path / "dupes")


# ---------------------------------------------------------------------------- the command
@needs_lm_eval
def test_cli_harness(finetune_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    out_file, tasks_dir = tmp_path / "results.json", tmp_path / "tasks"
    code = main(["eval", "harness", "--model", str(finetune_checkpoint), "--tasks", "tinyworld_facts_mc",
                 "--tasks", "tinyworld_arithmetic_1", "--num-fewshot", "1", "--limit", "3", "--compare",
                 "--out", str(out_file), "--tasks-dir", str(tasks_dir), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    import os

    assert os.environ["HF_DATASETS_OFFLINE"] == "1"  # the command set it before lm-eval imported datasets
    summary = json.loads(captured.out)
    assert set(summary["tasks"]) == {"tinyworld_facts_mc", "tinyworld_arithmetic_1"}
    facts = summary["tasks"]["tinyworld_facts_mc"]
    assert (facts["n"], facts["shots"], set(facts["metrics"])) == (3, 1, {"acc", "acc_norm"})
    assert "samples" not in facts and summary["out"] == str(out_file)
    assert summary["llmlab"]["tinyworld_facts_mc"]["llmlab"] == pytest.approx(facts["metrics"], abs=1e-6)
    assert all(row["same_items"] == 1.0 for row in summary["llmlab"].values())
    saved = json.loads(out_file.read_text())
    assert len(saved["tasks"]["tinyworld_arithmetic_1"]["samples"]) == 3
    assert (tasks_dir / "tinyworld_facts_mc.yaml").is_file() and saved["task_folder"] == str(tasks_dir)

    code = main(["eval", "harness", "--model", str(finetune_checkpoint), "--tasks", "tinyworld_poetry"])
    err = capsys.readouterr().err
    assert code != 0 and "unknown task 'tinyworld_poetry'" in err and len(err.strip().splitlines()) == 1


def test_without_lm_eval_the_command_says_how_to_install(tmp_path, capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "lm_eval" or m.startswith("lm_eval.")] + ["lm_eval"]:
        monkeypatch.setitem(sys.modules, name, None)  # `import lm_eval` now fails, installed or not
    monkeypatch.delitem(sys.modules, "llmlab.eval.harness", raising=False)
    code = main(["eval", "harness", "--model", str(tmp_path), "--tasks", "tinyworld_reviews"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1
    assert "pip install 'llmlab[harness]'" in err
