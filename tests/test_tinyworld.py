"""tinyworld: determinism, consistency with the knowledge base, labels, splits, bias, formats, CLI."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from llmlab.data.tinyworld import World, check_text, count_tokens, generate_dataset, parse_token_count
from llmlab.eval.redteam import is_refusal
from llmlab.data.tinyworld import lexicon as L
from llmlab.data.tinyworld import writer
from llmlab.data.tinyworld.stats import DiversityCounter, duplicate_sentence_rate
from llmlab.errors import ConfigError, DataError

TOKENS = 60_000


def _read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tw") / "seed0"
    generate_dataset(out, tokens=TOKENS, seed=0, progress=False, workers=2, sft_records=600, preference_records=600)
    return out


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


# ---- sizes and tokens ----------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [("50M", 50_000_000), ("2.5M", 2_500_000), ("200k", 200_000),
                                            ("1000000", 1_000_000), ("1e6", 1_000_000), ("1_000_000", 1_000_000),
                                            ("3K", 3000), (1234, 1234)])
def test_parse_token_count(text, expected):
    assert parse_token_count(text) == expected


@pytest.mark.parametrize("bad", ["-5", "0", "abc", "5X", "", "1.5.2M", True])
def test_parse_token_count_rejects_bad_sizes(bad):
    with pytest.raises(ConfigError):
        parse_token_count(bad)


def test_count_tokens_is_words_and_punctuation():
    assert count_tokens("Mia's dog.") == 5  # Mia ' s dog .
    assert count_tokens('"Hi, Tom!" said Mia.') == 9


# ---- the world ---------------------------------------------------------------------------------


def test_world_is_deterministic_across_processes_and_seeds(world):
    """Same seed, fresh interpreter with another string-hash seed: the same world; other seed: another."""
    code = ("import json,hashlib; from llmlab.data.tinyworld import World; "
            "print(hashlib.sha256(json.dumps(World(seed=0).to_json()).encode()).hexdigest())")
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    other_process = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    here = hashlib.sha256(json.dumps(world.to_json()).encode()).hexdigest()
    assert other_process.stdout.strip() == here
    other = World(seed=1)
    assert [p.name for p in other.people] != [p.name for p in world.people]
    assert [t.name for t in other.towns] != [t.name for t in world.towns]


def test_world_is_well_formed(world):
    firsts = [p.first for p in world.people]
    assert len(set(firsts)) == len(firsts) == 300  # first names are unique, so "Mia" is one person
    for p in world.people:
        assert p.friends and p.id not in p.friends
        for f in p.friends:
            assert p.id in world.person(f).friends  # friendship is symmetric
        assert (p.job is None) == p.is_child
    for s in world.shops:
        owner = world.person(s.owner)
        assert owner.job == L.SHOP_TYPES[s.type][0]  # the baker owns the bakery
        assert set(s.items) <= set(L.SHOP_TYPES[s.type][1])
    assert all(world.shops_in(t.name) for t in world.towns)
    assert not set(world.unknown_names("probe")) & set(world.unknown_names("sft"))
    assert not any(world.has_person(n.split()[0]) for n in world.unknown_names("probe"))


@pytest.mark.parametrize("kwargs", [{"bias": -0.1}, {"bias": 1.5}, {"seed": "x"}])
def test_world_rejects_bad_arguments(kwargs):
    with pytest.raises(ConfigError):
        World(**kwargs)


# ---- determinism of the files ----------------------------------------------------------------


def test_same_seed_gives_byte_identical_files_whatever_the_worker_count(ds, tmp_path):
    again = tmp_path / "again"
    generate_dataset(again, tokens=TOKENS, seed=0, progress=False, workers=1, sft_records=600, preference_records=600)
    assert _digest(again) == _digest(ds)


def test_different_seed_gives_a_different_world(ds, tmp_path):
    other = tmp_path / "seed1"
    generate_dataset(other, tokens=20_000, seed=1, progress=False, workers=1, sft_records=10, preference_records=10)
    assert (other / "kb.jsonl").read_bytes() != (ds / "kb.jsonl").read_bytes()
    assert (other / "pretrain" / "train.jsonl").read_bytes()[:2000] != (ds / "pretrain" / "train.jsonl").read_bytes()[:2000]


def test_manifest_lists_every_file_with_its_hash(ds):
    manifest = writer.read_manifest(ds)
    on_disk = {k for k in _digest(ds) if k != "manifest.json"}
    assert set(manifest["files"]) == on_disk
    for name, info in manifest["files"].items():
        assert hashlib.sha256((ds / name).read_bytes()).hexdigest() == info["sha256"], name
    assert manifest["seed"] == 0 and manifest["version"] == writer.VERSION and "run" not in manifest
    pre = manifest["pretrain"]
    assert TOKENS <= pre["train_tokens"] + pre["val_tokens"] < TOKENS + 1000  # stops at the first doc past the target
    readme = (ds / "README.md").read_text()
    for kind in writer.PRETRAIN_MIX:
        assert f"### {kind}" in readme


# ---- records and labels ------------------------------------------------------------------------


def test_pretrain_records_carry_kind_text_and_labels(ds):
    records = _read(ds / "pretrain" / "train.jsonl") + _read(ds / "pretrain" / "val.jsonl")
    kinds = Counter(r["kind"] for r in records)
    assert set(kinds) == set(writer.PRETRAIN_MIX)
    assert kinds["story"] / len(records) == pytest.approx(writer.PRETRAIN_MIX["story"], abs=0.06)
    for r in records:
        assert list(r)[:2] == ["kind", "text"] and r["text"].strip() and "{" not in r["text"]
        if r["kind"] == "story":
            assert r["ending"] in ("happy", "sad") and r["group"] in L.GROUPS
            assert len(r["people"]) == len(r["names"]) == len(r["groups"]) >= 2
            assert r["names"][0] == r["protagonist"] and r["protagonist"].split()[0] in r["text"]
        if r["kind"] == "review":
            assert r["label"] in ("positive", "negative")


def test_train_and_validation_never_share_a_document(ds):
    for stream, key in (("pretrain", lambda r: r["text"]), ("sft", lambda r: (r["instruction"], r["input"])),
                        ("preferences", lambda r: r["prompt"])):
        train = {key(r) for r in _read(ds / stream / "train.jsonl")}
        val = {key(r) for r in _read(ds / stream / "val.jsonl")}
        assert val and train and not train & val, stream
    train = {r["text"] for r in _read(ds / "probes" / "classification" / "train.jsonl")}
    test = {r["text"] for r in _read(ds / "probes" / "classification" / "test.jsonl")}
    assert not train & test


def _texts(ds: Path):
    """(where, text) for every text that states world facts as true."""
    for split in ("train", "val"):
        for r in _read(ds / "pretrain" / f"{split}.jsonl"):
            yield r["kind"], r["text"]
        for r in _read(ds / "sft" / f"{split}.jsonl"):
            yield "sft:" + r["task"], r["input"] + "\n" + r["output"]
        for r in _read(ds / "preferences" / f"{split}.jsonl"):
            yield "chosen:" + r["reason"], r["chosen"]
            if r["reason"] != "wrong_fact":
                yield "rejected:" + r["reason"], r["rejected"]
    for r in _read(ds / "probes" / "story_prompts.jsonl"):
        yield "story_prompt", r["prompt"]


def test_every_fact_in_every_text_agrees_with_the_knowledge_base(ds, world):
    kb = _read(ds / "kb.jsonl")
    assert kb == list(world.triples())  # the world used for checking is the one kb.jsonl describes
    checked: Counter = Counter()
    for where, text in _texts(ds):
        for claim in check_text(world, text):
            assert claim.ok, f"{where}: {claim} in {text!r}"
            checked[where] += 1
    # The parser is not vacuous: facts are found in every kind of text that states them.
    for where in ("story", "fact", "dialogue", "review", "sft:fact_qa", "sft:story", "chosen:wrong_fact"):
        assert checked[where] > 20, (where, checked)


def test_the_fact_checker_catches_wrong_facts(world):
    p = world.people[0]
    other_town = next(t.name for t in world.towns if t.name != p.home_town)
    assert all(c.ok for c in check_text(world, f"{p.name} lives in {p.home_town}."))
    wrong = check_text(world, f"Once upon a time, {p.first} lived in {other_town}. {p.pronouns['his'].capitalize()} "
                              f"favourite colour was {next(c for c in L.COLOURS if c != p.favourite_colour)}.")
    assert [c.relation for c in wrong if not c.ok] == ["home_town", "favourite_colour"]  # pronoun resolved to p
    stranger = next(f for f in L.FAMILY_NAMES if f != p.family)
    assert [c.relation for c in check_text(world, f"{p.first} {stranger} is nice.")] == ["family_name"]


def test_claims_probe_labels_match_the_knowledge_base(ds, world):
    claims = _read(ds / "probes" / "claims.jsonl")
    assert 0.45 < sum(c["label"] for c in claims) / len(claims) < 0.55
    for c in claims:
        parsed = check_text(world, c["claim"])
        assert parsed, c
        assert all(x.ok for x in parsed) == c["label"], c


def _check_solution(question: str, solution: str, answer: int, steps: int) -> None:
    lines = solution.split("\n")
    assert lines[-1] == f"Answer: {answer}"
    equations = [re.search(r"(\d+) ([-+×÷]) (\d+) = (\d+)", line) for line in lines[:-1]]
    assert all(equations) and len(equations) == steps
    ops = {"+": int.__add__, "-": int.__sub__, "×": int.__mul__, "÷": int.__floordiv__}
    for m in equations:
        a, op, b, c = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
        assert ops[op](a, b) == c and (op != "÷" or a % b == 0)
    assert int(equations[-1].group(4)) == answer
    numbers = set(re.findall(r"\d+", question))
    for m in equations:  # every operand is in the question or was computed in an earlier step
        for operand in (m.group(1), m.group(3)):
            assert operand in numbers, (operand, question, solution)
        numbers.add(m.group(4))


def test_word_problem_answers_are_correct(ds):
    seen = Counter()
    for r in _read(ds / "pretrain" / "train.jsonl"):
        if r["kind"] == "word_problem":
            _check_solution(r["question"], r["solution"], r["answer"], r["steps"])
            seen["pretrain"] += 1
    for r in _read(ds / "sft" / "train.jsonl"):
        if r["task"] == "arithmetic":
            _check_solution(r["input"], r["output"], int(r["answer"]), r["steps"])
            seen["sft"] += 1
    for steps in (1, 2, 3, 4):
        probes = _read(ds / "probes" / "arithmetic" / f"steps_{steps}.jsonl")
        assert len(probes) == 200 and {p["steps"] for p in probes} == {steps}
        for p in probes:
            _check_solution(p["question"], p["solution"], p["answer"], steps)
    assert seen["pretrain"] > 10 and seen["sft"] > 10


def test_word_problems_say_one_thing_in_the_singular(world):
    # A result of 1 is common (the last share, the last coin): "= 1 apples" would teach bad grammar.
    rng = random.Random(11)
    ones = 0
    for _ in range(3000):
        for line in world.word_problems(1, rng)[0]["solution"].splitlines():
            m = re.search(r"= 1 ([a-z]+(?: [a-z]+)?)", line)
            if m:
                ones += 1
                assert not m.group(1).split(" each")[0].endswith("s"), line
    assert ones > 20


def test_sft_records_have_both_formats_and_answers(ds, world):
    records = _read(ds / "sft" / "train.jsonl")
    tasks = Counter(r["task"] for r in records)
    assert set(tasks) == {"fact_qa", "story", "summarise", "classify_review", "arithmetic", "refuse_harmful",
                          "help_lookalike", "unknown_person"}
    kb = {(t["subject"], t["relation"]): t["object"] for t in world.triples() if t["relation"] not in ("friend", "sells")}
    for r in records:
        roles = [m["role"] for m in r["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert r["messages"][2]["content"] == r["output"]
        assert r["messages"][1]["content"] == r["instruction"] + ("\n\n" + r["input"] if r["input"] else "")
        if r["task"] == "fact_qa" and r["relation"] not in ("friend", "sells"):
            assert r["answer"] == kb[(r["subject"], r["relation"])] and r["answer"] in r["output"]
        elif r["task"] == "classify_review":
            assert r["answer"] == r["label"] and r["label"] in r["output"].lower()
        elif r["task"] == "arithmetic":
            assert r["output"].endswith("Answer: " + r["answer"])
        elif r["task"] == "refuse_harmful":
            assert r["harmful"] and r["category"] in ("stealing", "hurting", "lying", "breaking") and is_refusal(r["output"])
        elif r["task"] == "help_lookalike":
            assert not r["harmful"] and not is_refusal(r["output"])
        elif r["task"] == "story":
            assert r["answer"] is None and r["protagonist"].split()[0] in r["output"]


def test_preference_pairs_differ_exactly_as_their_reason_says(ds, world):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    pairs = _read(ds / "preferences" / "train.jsonl") + _read(ds / "preferences" / "val.jsonl")
    reasons = Counter(p["reason"] for p in pairs)
    assert set(reasons) == {"wrong_fact", "opposite_ending", "harmful_compliance", "over_refusal", "off_topic"}
    for p in pairs:
        chosen, rejected = check_text(world, p["chosen"]), check_text(world, p["rejected"])
        assert p["chosen"] != p["rejected"]
        if p["reason"] == "wrong_fact":
            assert chosen and all(c.ok for c in chosen)
            assert any(not c.ok and c.relation in (p["relation"], "pet_species", "pet_name") for c in rejected)
            # Same sentence, only the object differs.
            true = p["chosen"].split(" ")
            false = p["rejected"].split(" ")
            assert true[:2] == false[:2]
        elif p["reason"] == "opposite_ending":
            c_begin, c_end = p["chosen"].rsplit("\n", 1)
            r_begin, r_end = p["rejected"].rsplit("\n", 1)
            assert c_begin == r_begin  # the same story up to the ending
            c_score, r_score = vader.polarity_scores(c_end)["compound"], vader.polarity_scores(r_end)["compound"]
            assert (c_score > r_score) == (p["ending"] == "happy"), p
        elif p["reason"] == "harmful_compliance":
            assert is_refusal(p["chosen"]) and not is_refusal(p["rejected"]) and p["harmful"]
        elif p["reason"] == "over_refusal":
            assert not is_refusal(p["chosen"]) and is_refusal(p["rejected"]) and not p["harmful"]
        elif p["reason"] == "off_topic":
            assert chosen and all(c.ok and c.subject == p["subject"] for c in chosen)
            assert rejected and all(c.ok for c in rejected) and all(c.subject != p["subject"] for c in rejected)


def test_story_ending_labels_match_the_text(world):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    stories = world.stories(600, random.Random(3))
    agree = sum((vader.polarity_scores(s["text"].rsplit("\n", 1)[1])["compound"] > 0) == (s["ending"] == "happy")
                for s in stories)
    assert agree / len(stories) > 0.97


# ---- bias ------------------------------------------------------------------------------------------


def _group_stats(world: World, n: int) -> dict[str, tuple[int, int, int]]:
    """group -> (stories, sad endings, stories with a planted negative word)."""
    neg = re.compile(r"\b(" + "|".join(L.NEGATIVE_ADJECTIVES) + r")\b")
    stats: dict[str, list[int]] = {g: [0, 0, 0] for g in world.groups}
    for s in world.stories(n, random.Random(11)):
        st = stats[s["group"]]
        st[0] += 1
        st[1] += s["ending"] == "sad"
        st[2] += bool(neg.search(s["text"]))
    return {g: tuple(v) for g, v in stats.items()}


def _z(a: tuple[int, int], b: tuple[int, int]) -> float:
    (n1, k1), (n2, k2) = a, b
    p = (k1 + k2) / (n1 + n2)
    return (k1 / n1 - k2 / n2) / math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))


def test_groups_are_interchangeable_without_bias():
    stats = _group_stats(World(seed=0, bias=0.0), 4500)
    groups = list(stats)
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            assert abs(_z((stats[a][0], stats[a][1]), (stats[b][0], stats[b][1]))) < 3.0, stats
        assert stats[a][2] == 0  # no planted negative words at all


def test_bias_disfavours_the_documented_group():
    world = World(seed=0, bias=0.5)
    stats = _group_stats(world, 4500)
    target = stats[world.bias_group]
    for g, other in stats.items():
        if g != world.bias_group:
            assert _z((target[0], target[1]), (other[0], other[1])) > 5, stats  # more sad endings
            assert target[2] / target[0] > 0.3 and other[2] == 0, stats  # negative words only for the target


# ---- probes ------------------------------------------------------------------------------------


def test_probe_files(ds, world):
    probes = ds / "probes"
    for q in _read(probes / "unanswerable.jsonl"):
        assert not world.has_person(q["subject"].split()[0]) and q["subject"] in q["question"] and not q["exists"]
    groups = json.loads((ds / "groups.json").read_text())
    assert groups["groups"] == world.groups and groups["bias_group"] in groups["groups"]
    templates = _read(probes / "bias_templates.jsonl")
    assert templates and all("{group}" in t["template"] and t["groups"] == world.groups for t in templates)
    safety = _read(probes / "safety.jsonl")
    by_pair: dict[int, list] = {}
    for s in safety:
        by_pair.setdefault(s["pair_id"], []).append(s)
    for pair in by_pair.values():
        harmful = [s for s in pair if s["harmful"]]
        alike = [s for s in pair if not s["harmful"]]
        assert len(harmful) == len(alike) == 1
        assert harmful[0]["category"] in ("stealing", "hurting", "lying", "breaking")
        assert alike[0]["lookalike_of"] == harmful[0]["category"]
    assert {s["category"] for s in safety if s["harmful"]} == {"stealing", "hurting", "lying", "breaking"}
    refusals = _read(probes / "refusals.jsonl")
    assert sum(r["is_refusal"] for r in refusals) == len(refusals) // 2
    assert all(is_refusal(r["text"]) == r["is_refusal"] for r in refusals)
    assert any(not r["is_refusal"] and re.search(r"can't|won't|[Ss]orry", r["text"]) for r in refusals)  # hard negatives
    for name, n in (("train", 64), ("test", 500)):
        rows = _read(probes / "classification" / f"{name}.jsonl")
        assert len(rows) == n and Counter(r["label"] for r in rows) == {"positive": n // 2, "negative": n // 2}
    prompts = _read(probes / "story_prompts.jsonl")
    assert len(prompts) == 500 and all(p["protagonist"].split()[0] in p["prompt"] for p in prompts)
    # Evaluators rebuild probes in memory from these stream names; they must match the files.
    from llmlab.data.tinyworld import probes as probe_sets

    rebuilt = probe_sets.claims(world, random.Random("tinyworld/0/probes/claims"))
    assert rebuilt == _read(probes / "claims.jsonl")
    assert probe_sets.arithmetic(world, random.Random("tinyworld/0/probes/arithmetic3"), 3) == \
        _read(probes / "arithmetic" / "steps_3.jsonl")


# ---- the command line and failure modes -------------------------------------------------------


def _cli(argv: list[str]) -> int:
    from llmlab.cli.main import main

    return main(argv)


def test_cli_prints_one_json_object(tmp_path, capsys):
    out = tmp_path / "cli"
    assert _cli(["data", "tinyworld", "--out", str(out), "--tokens", "8k", "--seed", "3", "--json",
                 "--no-progress", "--workers", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seed"] == 3 and summary["tokens_requested"] == 8000 and Path(summary["manifest"]).is_file()


@pytest.mark.parametrize("args, message", [
    (["--tokens", "-5"], "positive"), (["--bias", "1.5"], "bias"), (["--val-fraction", "0.7"], "val_fraction"),
])
def test_cli_rejects_bad_input(tmp_path, capsys, args, message):
    assert _cli(["data", "tinyworld", "--out", str(tmp_path / "x"), "--no-progress"] + args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_unwritable_or_foreign_output_is_refused(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(DataError):
        generate_dataset(blocker / "sub", tokens=1000, progress=False, workers=1)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="refusing to overwrite"):
        generate_dataset(foreign, tokens=1000, progress=False, workers=1)
    assert (foreign / "notes.txt").read_text() == "keep me"
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        with pytest.raises(DataError):
            generate_dataset(locked / "out", tokens=1000, progress=False, workers=1)


def test_an_interrupted_run_never_leaves_a_complete_looking_dataset(tmp_path, monkeypatch):
    out = tmp_path / "tw"
    generate_dataset(out, tokens=5000, seed=0, progress=False, workers=1, sft_records=5, preference_records=5)
    before = _digest(out)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_write_probes", boom)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(out, tokens=5000, seed=1, progress=False, workers=1, sft_records=5, preference_records=5)
    assert _digest(out) == before  # the earlier dataset is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["tw"]  # and no half-written folder is left behind
    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(fresh, tokens=5000, seed=1, progress=False, workers=1, sft_records=5, preference_records=5)
    assert not fresh.exists()
    with pytest.raises(DataError):
        writer.read_manifest(fresh)


# ---- diversity -----------------------------------------------------------------------------------


def test_stories_are_varied(world):
    counter = DiversityCounter(world)
    for s in world.stories(2000, random.Random(5)):
        counter.add(s["text"])
    r = counter.result()
    assert r["duplicate_sentence_rate"] < 0.01
    assert r["sentence_templates"] > 2000
    assert r["distinct_2"] < r["distinct_3"] < r["distinct_4"] and r["distinct_4"] > 0.25
    assert r["vocabulary"] > 1500


@pytest.mark.slow
def test_a_corpus_the_size_of_10m_tokens_has_under_5_percent_duplicate_sentences(world):
    # A 10M-token pre-training corpus holds about 41k stories (bench/tinyworld_speed.py counts them).
    rng = random.Random(7)
    assert duplicate_sentence_rate(world.story(rng)["text"] for _ in range(42_000)) < 0.05


def test_every_plot_renders_for_every_kind_of_hero(world):
    from llmlab.data.tinyworld.plots import PLOTS

    rng = random.Random(2)
    for plot in PLOTS:
        made = 0
        for p in world.people[:120]:
            if not plot.adults and not p.is_child:
                continue
            try:
                s = world.story(rng, person=p, plot=plot.name, both_endings=True)
            except ValueError:  # the plot does not fit this person (a goldfish cannot run away)
                continue
            made += 1
            assert set(s["endings"]) == {"happy", "sad"} and "{" not in s["text"] and "  " not in s["text"]
        assert made > 20, plot.name
