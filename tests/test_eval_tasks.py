"""The task harness: lm-eval's acc / acc_norm on hand-made cases, few-shot prompts, exact match,
the JSONL schema and its errors, the built-in tinyworld tasks and the CLI."""

from __future__ import annotations

import json
import random

import pytest

import llmlab.infer
from llmlab.errors import ConfigError, DataError
from llmlab.eval.tasks import (
    TINYWORLD_TASKS,
    Task,
    evaluate_task,
    load_task_file,
    score_generation,
    task_from_records,
    tinyworld_task,
)


def fixed_scores(monkeypatch, table):
    """Make the engine's scorer return log-likelihoods from `table[continuation]` (and record calls)."""
    calls = []

    def fake(model, tokenizer, contexts, continuations, batch_size=16):
        calls.append((list(contexts), list(continuations)))
        return [(table[c], 1, False) for c in continuations]

    monkeypatch.setattr(llmlab.infer, "score_continuations", fake)
    return calls


def test_acc_and_acc_norm_follow_lm_eval(monkeypatch):
    # lm-eval: acc = argmax(ll), acc_norm = argmax(ll / len(choice)), len in characters without the delimiter.
    calls = fixed_scores(monkeypatch, {" a": -10.0, " much longer choice": -12.0, " b": -3.0, " bb": -7.0,
                                       " x": -1.0, " y": -1.0})
    task = task_from_records([
        {"query": "Q1", "choices": ["a", "much longer choice"], "gold": 1},  # acc wrong, acc_norm right
        {"query": "Q2", "choices": ["b", "bb"], "gold": "b"},  # both right (gold given as the string)
        {"query": "Q3", "choices": ["x", "y"], "gold": 1},  # a tie goes to the first choice, as numpy's argmax
    ])
    r = evaluate_task(None, None, task)
    assert [s["acc"] for s in r.samples] == [0.0, 1.0, 0.0]
    assert [s["acc_norm"] for s in r.samples] == [1.0, 1.0, 0.0]
    assert r.metrics == {"acc": pytest.approx(1 / 3), "acc_norm": pytest.approx(2 / 3)}
    assert r.chance == 0.5 and r.ci["acc"][0] < 1 / 3 < r.ci["acc"][1]
    assert calls[0][0][:2] == ["Q1", "Q1"] and calls[0][1][:2] == [" a", " much longer choice"]


def test_few_shot_prompts():
    docs = [{"query": f"Q{i}", "choices": ["yes", "no"], "gold": i % 2} for i in range(6)]
    task = Task("t", "multiple_choice", docs, docs, description="Answer:", fewshot_delimiter="\n\n")
    ctx = task.fewshot_context(docs[0], 3, random.Random(0))
    parts = ctx.split("\n\n")
    assert parts[0] == "Answer:" and parts[-1] == "Q0" and len(parts) == 5
    for ex in parts[1:-1]:  # "Qi yes|no", never the query itself
        q, target = ex.split(" ")
        assert q != "Q0" and target == ["yes", "no"][int(q[1:]) % 2]
    assert ctx == task.fewshot_context(docs[0], 3, random.Random(0))  # seeded
    with pytest.raises(ConfigError, match="only 5 examples"):
        task.fewshot_context(docs[0], 6, random.Random(0))


def test_generative_scoring():
    assert score_generation(" Mia lives in Pinebrook.", ["Pinebrook", "Mia lives in Pinebrook."]) == \
        {"exact_match": 1.0, "contains": 1.0}
    assert score_generation("She lives in Pinebrook now", ["pinebrook"]) == {"exact_match": 0.0, "contains": 1.0}
    assert score_generation("Pinebrookside", ["Pinebrook"])["contains"] == 0.0  # whole words only
    sol = "The milkshakes cost 5 x 3 = 15 coins.\nAfter paying: 58 - 15 = 43 coins.\nAnswer: 43"
    assert score_generation(sol, ["43"], "answer") == {"exact_match": 1.0, "contains": 1.0}
    assert score_generation("Answer: 42 (not 43)", ["43"], "answer")["exact_match"] == 0.0
    # One answer given as a string is one answer, not its characters ("14" is not "1" or "4").
    assert score_generation("Answer: 4", "14", "answer") == {"exact_match": 0.0, "contains": 0.0}
    assert score_generation("Answer: 14", "14", "answer")["exact_match"] == 1.0


def test_the_model_knows_its_facts_as_multiple_choice_and_generation(fact_model):
    from llmlab.data.tinyworld.facts import person_answer

    model, tok, world = fact_model["model"], fact_model["tokenizer"], fact_model["world"]
    towns = sorted({p.home_town for p in world.people})
    mc, gen = [], []
    for p in fact_model["people"]:
        wrong = [t for t in towns if t != p.home_town][:3]
        options = [person_answer(world, p, "home_town", t) for t in [p.home_town] + wrong]
        mc.append({"query": f"User: Where does {p.name} live?\nAssistant:", "choices": options, "gold": 0})
        gen.append({"query": f"User: Where does {p.name} live?\nAssistant:", "answer": [p.home_town, options[0]]})
    r = evaluate_task(model, tok, task_from_records(mc))
    assert r.metrics["acc"] >= 0.85 and r.metrics["acc_norm"] >= 0.85 and r.chance == 0.25
    g = evaluate_task(model, tok, task_from_records(gen))
    assert g.metrics["exact_match"] >= 0.85 and g.metrics["contains"] >= g.metrics["exact_match"]
    assert all(s["output"] for s in g.samples)


def test_task_files(tmp_path):
    path = tmp_path / "my_task.jsonl"
    rows = [{"task_config": {"name": "capitals", "description": "Capitals.", "shots": 1, "stop": ["\n"]}},
            {"query": "France:", "answer": "Paris", "split": "train"},
            {"query": "Italy:", "answer": ["Rome", "Roma"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = load_task_file(path)
    assert (task.name, task.kind, task.shots) == ("capitals", "generate", 1)
    assert (len(task.docs), len(task.fewshot_docs)) == (1, 1)
    assert task.fewshot_context(task.docs[0], 1, random.Random(0)) == "Capitals.\n\nFrance: Paris\n\nItaly:"


@pytest.mark.parametrize("records,msg", [
    ([], "no task records"),
    ([{"choices": ["a", "b"], "gold": 0}], "needs a string \"query\""),
    ([{"query": "q", "choices": ["a"], "gold": 0}], "at least two"),
    ([{"query": "q", "choices": ["a", "b"], "gold": 2}], "choice index"),
    ([{"query": "q", "choices": ["a", "b"], "gold": "c"}], "not one of the choices"),
    ([{"query": "q"}], "needs \"choices\""),
    ([{"query": "q", "answer": "a"}, {"query": "q", "choices": ["a", "b"], "gold": 0}], "mixes"),
    ([{"query": "q", "answer": "a", "split": "train"}], "nothing left to evaluate"),
    ([{"task_config": {"nme": "x"}}, {"query": "q", "answer": "a"}], "task_config keys"),
])
def test_bad_task_records(records, msg):
    with pytest.raises(DataError, match=msg) as info:
        task_from_records(records, where="f.jsonl")
    assert "\n" not in str(info.value)


def test_bad_files_and_options(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_task_file(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "answer": "a"}\n{not json\n')
    with pytest.raises(DataError, match="bad.jsonl:2: invalid JSON"):
        load_task_file(bad)
    task = task_from_records([{"query": "q", "answer": "a"}])
    with pytest.raises(ConfigError, match="shots must be"):
        evaluate_task(None, None, task, shots=-1)
    with pytest.raises(ConfigError, match="unknown task"):
        tinyworld_task("tinyworld_poetry")


def test_builtin_tinyworld_tasks():
    from llmlab.eval.tinyworld_probes import TinyworldProbes

    probes = TinyworldProbes(seed=0)
    sizes = {name: len(tinyworld_task(name, probes).docs) for name in TINYWORLD_TASKS}
    assert sizes == {"tinyworld_reviews": 500, "tinyworld_facts_mc": 200, "tinyworld_facts_gen": 200,
                     **{f"tinyworld_arithmetic_{s}": 200 for s in (1, 2, 3, 4)}}
    mc = tinyworld_task("tinyworld_facts_mc", probes)
    doc = mc.docs[0]
    assert len(doc["choices"]) == 4 and len(set(doc["choices"])) == 4 and doc["query"].startswith("User: ")
    reviews = tinyworld_task("tinyworld_reviews", probes)
    assert reviews.shots == 4 and not {d["query"] for d in reviews.docs} & {d["query"] for d in reviews.fewshot_docs}
    arith = tinyworld_task("tinyworld_arithmetic_2", probes)
    assert arith.docs[0]["extract"] == "answer" and arith.target_delimiter == "\n"
    assert all(isinstance(d["answer"], list) and len(d["answer"]) == 1 for d in arith.docs)


def test_cli(fact_model, tmp_path, capsys):
    from llmlab.cli.main import main

    f = tmp_path / "t.jsonl"
    p = fact_model["people"][0]
    f.write_text(json.dumps({"query": f"User: Where does {p.name} live?\nAssistant:",
                             "choices": [f"{p.name} lives in {p.home_town}.", f"{p.name} lives in Nowhere."],
                             "gold": 0}) + "\n")
    samples = tmp_path / "samples.jsonl"
    code = main(["eval", "tasks", "--model", str(fact_model["ckpt"]), "--file", str(f), "--task", "tinyworld_facts_mc",
                 "--limit", "3", "--samples-out", str(samples), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    r = json.loads(out.out)
    assert set(r["tasks"]) == {"t", "tinyworld_facts_mc"} and r["tasks"]["t"]["metrics"]["acc"] == 1.0
    assert r["tasks"]["tinyworld_facts_mc"]["n"] == 3 and len(samples.read_text().splitlines()) == 4
    code = main(["eval", "tasks", "--model", str(fact_model["ckpt"]), "--file", str(tmp_path / "none.jsonl")])
    assert code == 1 and "task file not found" in capsys.readouterr().err


def test_probes_follow_the_checkpoints_training_data(tmp_path, monkeypatch):
    """A world made with `llmlab data tinyworld --seed 7` and trained on through `data prepare` (or an
    SFT stage on top) is found from the checkpoint, not silently replaced by World(seed=0)."""
    from llmlab.eval.tinyworld_probes import find_tinyworld_dir

    monkeypatch.chdir(tmp_path)  # recorded paths are relative to where training ran
    (tmp_path / "tw").mkdir()
    (tmp_path / "tw" / "manifest.json").write_text(json.dumps({"generator": "tinyworld", "seed": 7}))
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "manifest.json").write_text(json.dumps({"sources": ["tw/pretrain/train.jsonl"]}))
    for run, cfg in (("base", {"data": "shards"}), ("sft", {"data": "chats.jsonl", "init_from": "base/checkpoint"}),
                     ("other", {"data": "chats.jsonl"})):
        (tmp_path / run / "checkpoint").mkdir(parents=True)
        (tmp_path / run / "train_config.json").write_text(json.dumps(cfg))
    assert find_tinyworld_dir("base/checkpoint") == find_tinyworld_dir("sft/checkpoint") == find_tinyworld_dir("base")
    assert find_tinyworld_dir("base/checkpoint").resolve() == (tmp_path / "tw").resolve()
    assert find_tinyworld_dir("other/checkpoint") is None
