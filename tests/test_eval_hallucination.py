"""Hallucination detectors: the KB check on tinyworld's labelled claims, the lesson's
`detect_hallucination`, and the model-based detectors separating true from false claims (and
real from made-up people) on a model trained to know the facts (the `fact_model` fixture)."""

from __future__ import annotations

import json
import math

import pytest

from llmlab.errors import DataError
from llmlab.eval.hallucination import (
    KnowledgeBase,
    claim_likelihood,
    detect_hallucination,
    evaluate_hallucination,
    self_consistency,
    split_claim,
    verification_prompt,
)
from llmlab.eval.stats import auroc, binary_metrics
from llmlab.eval.tinyworld_probes import TinyworldProbes


@pytest.fixture(scope="module")
def probes():
    return TinyworldProbes(seed=0)


def test_kb_check_agrees_with_tinyworld_labels(probes):
    kb = KnowledgeBase.from_any(probes.kb())
    claims = probes.load("claims")[:300]
    checks = [kb.check(c["claim"]) for c in claims]
    decided = [(c["label"], k.supported) for c, k in zip(claims, checks) if k is not None]
    assert len(decided) >= 0.97 * len(claims)  # a fact matches almost every claim
    m = binary_metrics([not t for t, _ in decided], [not s for _, s in decided])
    assert m["precision"] >= 0.99 and m["recall"] >= 0.99
    # A structured claim compares subject/relation/object directly.
    false = next(c for c in claims if not c["label"])
    assert kb.check({k: false[k] for k in ("subject", "relation", "object")}).supported is False
    assert kb.check({**{k: false[k] for k in ("subject", "relation")}, "object": false["true_object"]}).supported


def test_kb_check_explains_itself():
    kb = KnowledgeBase.from_any([("Mia Lopez", "home_town", "Pinebrook"), ("Tom Hale", "home_town", "Foxton"),
                                 ("Mia Lopez", "pet_species", "dog"), ("Tom Hale", "pet_species", "cat"),
                                 ("Mia Lopez", "age", "7"), ("Tom Hale", "age", "30")])
    check = kb.check("Mia Lopez lives in Foxton and has a dog.")
    assert check.supported is False and check.subject == "mia lopez"
    assert [(v["value"], v["supported"]) for v in check.values] == [("foxton", False), ("dog", True)]
    assert kb.check("Mia Lopez is 9 years old.").supported is False  # any number can fill a numeric relation
    assert kb.check("Mia Lopez has a dog.").supported is True
    assert kb.check("Sam Pike lives in Foxton.") is None  # nobody the KB knows: no decision
    assert kb.check("Mia Lopez likes the sea.") is None  # nothing the KB records about her


def test_detect_hallucination_uses_the_kb_when_a_fact_matches(fact_model, tmp_path):
    model, tok = fact_model["model"], fact_model["tokenizer"]
    triples = list(fact_model["world"].triples())  # the whole world's KB, as kb.jsonl holds it
    path = tmp_path / "kb.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in triples))
    for kb in (triples, str(path), path):
        got = [detect_hallucination(model, tok, c["claim"], kb) for c in fact_model["claims"]]
        assert got == [not c["label"] for c in fact_model["claims"]]
    verdict = detect_hallucination(model, tok, fact_model["claims"][1]["claim"], triples, return_details=True)
    assert verdict and verdict.method == "kb" and verdict.evidence  # truthy = hallucinated, with the fact shown


def test_a_claim_a_kb_sentence_states_word_for_word_is_supported(fact_model):
    model, tok = fact_model["model"], fact_model["tokenizer"]
    kb = ["The Eiffel Tower is in Paris.", "Water boils at 100 degrees. Ice melts at 0 degrees."]
    for claim in ("The Eiffel Tower is in Paris.", "the Eiffel  tower is in Paris", "Ice melts at 0 degrees."):
        v = detect_hallucination(model, tok, claim, kb, return_details=True)
        assert not v and v.method == "kb" and v.evidence[0] in kb, claim
    # A sentence that says something else decides nothing: the model is asked.
    assert detect_hallucination(model, tok, "The Eiffel Tower is in Rome.", kb, return_details=True).method == "yes_no"


def test_a_subject_relation_object_claim_is_compared_with_the_kb_triples(fact_model):
    model, tok = fact_model["model"], fact_model["tokenizer"]
    triples = list(fact_model["world"].triples())
    for c in fact_model["claims"][:6]:
        claim = {k: c[k] for k in ("subject", "relation", "object")}
        v = detect_hallucination(model, tok, claim, triples, return_details=True)
        assert v.method == "kb" and v.hallucinated == (not c["label"]), claim
    # With no triple about it, the model judges the fact as the KB would show it.
    v = detect_hallucination(model, tok, {"subject": "Nobody", "relation": "home_town", "object": "Foxton"}, triples,
                             return_details=True)
    assert v.method == "yes_no" and v.p_yes + v.p_no == pytest.approx(1.0)


def test_detect_hallucination_without_a_matching_fact_asks_the_model(fact_model):
    from llmlab.infer import score_continuations

    model, tok = fact_model["model"], fact_model["tokenizer"]
    claim = fact_model["claims"][0]["claim"]
    sentences = [c["claim"] for c in fact_model["claims"] if c["label"] and c["claim"] != claim]  # none states it
    for kb, evidence in ((None, []), (sentences, sentences[:3])):
        v = detect_hallucination(model, tok, claim, kb, return_details=True)
        assert v.method == "yes_no" and v.p_yes + v.p_no == pytest.approx(1.0)
        prompt = verification_prompt(claim, v.evidence)
        (yes, _, _), (no, _, _) = score_continuations(model, tok, prompt, [" Yes", " No"])
        assert v.p_no == pytest.approx(1 / (1 + math.exp(yes - no)))
        assert v.hallucinated == (v.p_no > 0.5) and isinstance(detect_hallucination(model, tok, claim, kb), bool)
        assert set(evidence) <= set(v.evidence)  # the subject's facts are shown to the model


def test_model_detectors_separate_true_from_false_claims(fact_model):
    model, tok, claims = fact_model["model"], fact_model["tokenizer"], fact_model["claims"]
    labels = [not c["label"] for c in claims]  # positive: a false claim
    lik = claim_likelihood(model, tok, claims)
    assert auroc(labels, [r["score"] for r in lik]) >= 0.95
    assert binary_metrics(labels, [r["flagged"] for r in lik])["accuracy"] >= 0.9
    prefixes = [split_claim(c)[0].rstrip() for c in claims]
    sc = self_consistency(model, tok, prefixes, samples=5, claimed=[c["object"] for c in claims], stop=[".", "\n"])
    assert auroc(labels, [r["score"] for r in sc]) >= 0.9


def test_self_consistency_flags_questions_about_people_who_do_not_exist(fact_model):
    model, tok = fact_model["model"], fact_model["tokenizer"]
    known = [f"Where does {p.name} live?" for p in fact_model["people"]]
    unknown = [f"Where does {n} live?" for n in fact_model["unknown"]]
    res = self_consistency(model, tok, known + unknown, samples=5, prompt_format="dialogue", max_new_tokens=12)
    scores = [r["score"] for r in res]
    assert auroc([False] * len(known) + [True] * len(unknown), scores) >= 0.8
    assert sum(scores[:len(known)]) < sum(scores[len(known):])


def test_split_claim():
    assert split_claim({"claim": "Mia Lopez lives in Pinebrook.", "object": "Pinebrook"}) == \
        ("Mia Lopez lives in ", "Pinebrook.")
    assert split_claim({"claim": "Mia's friends are Tom and Ann.", "object": "Ann|Tom"})[1] == "Tom and Ann."
    assert split_claim("The sky is blue.") == ("The sky is ", "blue.")


def test_evaluate_hallucination_on_tinyworld(fact_model, probes):
    rep = evaluate_hallucination(fact_model["model"], fact_model["tokenizer"], probes, n_claims=12, n_questions=4,
                                 samples=2)
    assert set(rep["claims"]) >= {"kb", "yes_no", "likelihood", "self_consistency"}
    assert rep["claims"]["kb"]["precision"] == 1.0 and rep["claims"]["kb"]["coverage"] == 1.0
    for m in (rep["claims"]["likelihood"], rep["questions"]["self_consistency"]):
        assert {"precision", "recall", "auroc"} <= set(m) and 0 <= m["auroc"] <= 1
    assert rep["questions"]["n_unknown"] == rep["questions"]["n_known"] == 4
    assert len(rep["scores"]["claims"]["labels"]) == 12


@pytest.mark.parametrize("call,msg", [
    (lambda m, t: detect_hallucination(m, t, "  ", None), "empty"),
    (lambda m, t: detect_hallucination(m, t, "Mia is 7.", "/nonexistent/kb.jsonl"), "knowledge base not found"),
    (lambda m, t: detect_hallucination(m, t, "Mia is 7.", [42]), "knowledge base item 1"),
    (lambda m, t: self_consistency(m, t, ["Hi"], samples=1), "at least 2 samples"),
    (lambda m, t: self_consistency(m, t, ["Hi"], temperature=0), "temperature > 0"),
])
def test_bad_inputs_are_one_line_errors(fact_model, call, msg):
    with pytest.raises(DataError, match=msg) as info:
        call(fact_model["model"], fact_model["tokenizer"])
    assert "\n" not in str(info.value)


def test_cli(fact_model, tmp_path, capsys):
    from llmlab.cli.main import main

    png = tmp_path / "roc.png"
    code = main(["eval", "hallucination", "--model", str(fact_model["ckpt"]), "--claims", "8", "--questions", "3",
                 "--samples", "2", "--plot", str(png), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    r = json.loads(out.out)
    assert r["claims"]["n"] == 8 and "auroc" in r["questions"]["self_consistency"] and "scores" not in r
    assert png.read_bytes()[:4] == b"\x89PNG"
    code = main(["eval", "hallucination", "--model", str(fact_model["ckpt"]), "--claims", "1"])
    assert code == 1 and "--claims must be at least 2" in capsys.readouterr().err
