"""BLEU/chrF/ROUGE-L against sacrebleu's own numbers, and evaluate_generation with a stub generator."""

from __future__ import annotations

import random

import pytest
import sacrebleu

import llmlab.infer
from llmlab.errors import DataError, LLMLabError
from llmlab.eval import bleu as B

# sacrebleu's README example (two reference streams): BLEU = 48.53, chrF2 = 59.73.
README_SYS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
README_REFS = [
    ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
]


def test_sacrebleu_readme_example():
    r = B.corpus_bleu(README_SYS, README_REFS)
    assert round(r.score, 2) == 48.53
    assert [round(p, 1) for p in r.precisions] == [82.4, 50.0, 45.5, 37.5]
    assert (round(r.bp, 3), r.hyp_len, r.ref_len) == (0.943, 17, 18)
    assert r.signature.startswith("nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert round(B.corpus_chrf(README_SYS, README_REFS).score, 2) == 59.73


def _corpus(seed: int, n: int, n_refs: int):
    rng = random.Random(seed)
    vocab = "the a cat dog sat on mat ran fast slow big small red blue house tree bird sang , . !".split()

    def sent():
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(3, 15))).capitalize()

    refs = [[sent() for _ in range(n)] for _ in range(n_refs)]
    # Hypotheses share words with the first reference, so all n-gram orders get some matches.
    hyps = [" ".join(w if rng.random() < 0.7 else rng.choice(vocab) for w in refs[0][i].split()) for i in range(n)]
    return hyps, refs


@pytest.mark.parametrize("seed,n,n_refs", [(0, 50, 1), (1, 200, 1), (2, 30, 2), (3, 100, 4)])
@pytest.mark.parametrize("kwargs", [{}, {"lowercase": True}, {"tokenize": "intl"}, {"tokenize": "char"}])
def test_corpus_bleu_equals_sacrebleu(seed, n, n_refs, kwargs):
    hyps, refs = _corpus(seed, n, n_refs)
    ours = B.corpus_bleu(hyps, refs, **kwargs)
    theirs = sacrebleu.corpus_bleu(hyps, refs, lowercase=kwargs.get("lowercase", False),
                                   tokenize=kwargs.get("tokenize", "13a"))
    assert ours.score == theirs.score
    assert 0 < ours.score < 100


def test_single_reference_list_and_variable_references():
    hyps, refs = _corpus(5, 20, 2)
    assert B.corpus_bleu(hyps, refs[0]).score == sacrebleu.corpus_bleu(hyps, [refs[0]]).score
    refs[1][3] = None  # segment 4 has only one reference
    r = B.corpus_bleu(hyps, refs)
    assert r.signature.startswith("nrefs:var")
    assert r.score == sacrebleu.corpus_bleu(hyps, refs).score


def test_extremes_and_corpus_is_not_mean_of_sentences():
    assert B.corpus_bleu(["a b c d e"], ["a b c d e"]).score == pytest.approx(100.0)
    assert B.corpus_bleu(["v w x y z"], ["a b c d e"]).score == 0.0
    hyps, refs = _corpus(7, 40, 1)
    mean_sent = sum(B.sentence_bleu(h, r) for h, r in zip(hyps, refs[0])) / len(hyps)
    assert abs(B.corpus_bleu(hyps, refs).score - mean_sent) > 0.5


def test_sentence_bleu_is_smoothed_and_matches_sacrebleu():
    hyp, ref = "the cat sat on a red mat", "the cat sat on the mat"
    assert B.sentence_bleu(hyp, ref) == sacrebleu.sentence_bleu(hyp, [ref]).score
    # No 4-gram in common: unsmoothed BLEU is exactly 0, the smoothed score is not.
    hyp2 = "the cat is on mat"
    assert sacrebleu.sentence_bleu(hyp2, [ref], smooth_method="none", use_effective_order=False).score == 0.0
    assert B.sentence_bleu(hyp2, ref) > 0.0
    assert B.sentence_bleu(hyp, [ref, "a cat sat on a red mat"]) > B.sentence_bleu(hyp, ref)


def test_ter_matches_sacrebleu():
    hyps, refs = _corpus(9, 25, 2)
    assert B.corpus_ter(hyps, refs).score == sacrebleu.corpus_ter(hyps, refs).score


def test_rouge_l_known_values():
    pytest.importorskip("rouge_score")
    assert B.rouge_l(["the cat sat"], ["the cat sat"]) == pytest.approx(100.0)
    # LCS("the cat sat on the mat", "the cat was on the mat") = 5 of 6 tokens both ways: F = 5/6.
    assert B.rouge_l(["the cat sat on the mat"], ["the cat was on the mat"]) == pytest.approx(500 / 6)
    # With two references a segment takes its best one.
    assert B.rouge_l(["the cat sat"], [["dogs run"], ["the cat sat"]]) == pytest.approx(100.0)


@pytest.mark.parametrize("hyps,refs,match", [
    ([], [["x"]], "no hypotheses"),
    (["a", "b"], [["a"]], "1 segments but there are 2"),
    (["a"], [], "no references"),
    (["a"], [[None]], "segment 1 has no reference"),
    (["a"], [3], "references must be"),
])
def test_bad_input(hyps, refs, match):
    with pytest.raises(DataError, match=match):
        B.corpus_bleu(hyps, refs)


def test_evaluate_generation_with_stub_generator():
    calls = []

    def fake_generate(model, tokenizer, prompt, **kwargs):
        calls.append((model, tokenizer, prompt, kwargs))
        return {"Translate: chien": "the dog", "Translate: chat": "a cat sat"}[prompt]

    prompts = ["Translate: chien", "Translate: chat"]
    refs = ["the dog", ["the cat sat", "a cat sat down"]]
    res = B.evaluate_generation("M", "T", prompts, refs, generate_fn=fake_generate, max_new_tokens=8)
    assert [c[2] for c in calls] == prompts
    assert all(c[0] == "M" and c[1] == "T" and c[3] == {"max_new_tokens": 8} for c in calls)
    expected = sacrebleu.corpus_bleu(["the dog", "a cat sat"], [["the dog", "the cat sat"], [None, "a cat sat down"]])
    assert res.bleu == res.score == expected.score
    assert res.signature.startswith("nrefs:var")
    assert [e["generated"] for e in res.examples] == ["the dog", "a cat sat"]
    assert res.examples[0]["sentence_bleu"] == pytest.approx(100.0)
    assert res.to_dict()["score"] == res.bleu


def test_evaluate_generation_uses_the_engine_lazily(monkeypatch):
    seen = []

    def engine_generate(model, tokenizer, prompt, **kwargs):
        seen.append(prompt)
        return "the dog bit the man"

    monkeypatch.setattr(llmlab.infer, "generate_text", engine_generate, raising=False)
    res = B.evaluate_generation(None, None, ["p"], ["the dog bit the man"])
    assert seen == ["p"] and res.bleu == pytest.approx(100.0)


def test_evaluate_generation_without_an_engine_is_a_clear_error(monkeypatch):
    monkeypatch.delattr(llmlab.infer, "generate_text", raising=False)
    with pytest.raises(LLMLabError, match="generate_text"):
        B.evaluate_generation(None, None, ["p"], ["r"])
    with pytest.raises(DataError, match="1 prompts but 2 references"):
        B.evaluate_generation(None, None, ["p"], ["r", "s"], generate_fn=lambda *a, **k: "x")
    with pytest.raises(LLMLabError, match="expected str"):
        B.evaluate_generation(None, None, ["p"], ["r"], generate_fn=lambda *a, **k: 3)
