"""Bias statistics (planted vs null differences, false-positive rate), sentiment scorers,
bias_evaluation with a stub generator, and the likelihood probe with a stub scorer."""

from __future__ import annotations

import numpy as np
import pytest

from llmlab.errors import ConfigError, DataError
from llmlab.eval import bias as Bz
from llmlab.eval import stats as St


def test_planted_difference_is_flagged_and_null_is_not():
    rng = np.random.default_rng(0)
    planted = {"group_a": rng.normal(0.1, 0.3, 80), "group_b": rng.normal(-0.15, 0.3, 80),
               "group_c": rng.normal(0.1, 0.3, 80)}
    res = St.compare_groups(planted, seed=1)
    assert res.significant and res.p_value < 0.001
    assert res.gap_pair == ("group_a", "group_b") or res.gap_pair == ("group_c", "group_b")
    assert res.gap_ci[0] > 0  # the gap's CI excludes zero
    assert res.largest_gap == pytest.approx(max(g.mean for g in res.groups) - min(g.mean for g in res.groups))
    null = {"group_a": rng.normal(0, 0.3, 80), "group_b": rng.normal(0, 0.3, 80)}
    res0 = St.compare_groups(null, seed=1)
    assert not res0.significant and res0.p_value > 0.05
    assert res0.gap_ci[0] < 0 < res0.gap_ci[1]


def test_false_positive_rate_is_near_alpha():
    rejections = 0
    n_seeds = 1000
    for s in range(n_seeds):
        rng = np.random.default_rng(10_000 + s)
        groups = {"a": rng.normal(0, 1, 25), "b": rng.normal(0, 1, 25)}
        rejections += St.permutation_test(groups, n_permutations=199, seed=s) < 0.05
    fpr = rejections / n_seeds
    # Binomial(1000, 0.05): sd ~0.007; the test has exact size, so expect 0.05 within ~3 sd.
    assert 0.03 <= fpr <= 0.07, fpr


def test_power_against_a_moderate_effect():
    hits = 0
    for s in range(60):
        rng = np.random.default_rng(20_000 + s)
        hits += St.permutation_test({"a": rng.normal(0.8, 1, 30), "b": rng.normal(0, 1, 30)},
                                    n_permutations=199, seed=s) < 0.05
    assert hits / 60 >= 0.7  # power of a 0.8-sd effect with n=30 per group is ~0.86


def test_permutation_p_value_matches_exact_enumeration():
    # Two groups of 4: all C(8,4)=70 splits can be enumerated exactly.
    from itertools import combinations

    a, b = [3.1, 2.4, 5.0, 4.2], [1.0, 2.2, 0.5, 1.9]
    pooled = a + b
    obs = abs(np.mean(a) - np.mean(b))
    exact = np.mean([abs(np.mean([pooled[i] for i in idx]) - np.mean([pooled[i] for i in range(8) if i not in idx]))
                     >= obs - 1e-12 for idx in combinations(range(8), 4)])
    p = St.permutation_test({"a": a, "b": b}, n_permutations=20_000, seed=0)
    assert p == pytest.approx(exact, abs=0.01)


def test_stratified_permutation_respects_templates():
    # Template 1 is much more positive than template 2, for both groups alike: no group effect.
    rng = np.random.default_rng(4)
    a = np.r_[rng.normal(1, 0.1, 20), rng.normal(-1, 0.1, 5)]
    b = np.r_[rng.normal(1, 0.1, 20), rng.normal(-1, 0.1, 5)]
    strata = {"a": [1] * 20 + [2] * 5, "b": [1] * 20 + [2] * 5}
    assert St.permutation_test({"a": a, "b": b}, strata=strata, seed=0) > 0.05
    with pytest.raises(DataError, match="one stratum per score"):
        St.permutation_test({"a": a, "b": b}, strata={"a": [1], "b": [1]})


def test_bootstrap_ci_coverage():
    covered = 0
    for s in range(200):
        x = np.random.default_rng(s).normal(2.0, 1.0, 40)
        lo, hi = St.bootstrap_ci(x, n_boot=1000, seed=s)
        covered += lo <= 2.0 <= hi
    assert 0.88 <= covered / 200 <= 0.99


def test_binary_metrics_auroc_wilson():
    m = St.binary_metrics([True, True, False, False], [True, False, True, False])
    assert (m["precision"], m["recall"], m["accuracy"]) == (0.5, 0.5, 0.5)
    rng = np.random.default_rng(0)
    labels = rng.random(60) < 0.5
    scores = rng.normal(size=60) + labels
    brute = np.mean([(sp > sn) + 0.5 * (sp == sn) for sp in scores[labels] for sn in scores[~labels]])
    assert St.auroc(labels, scores) == pytest.approx(brute)
    assert St.auroc([True, False, True, False], [1, 1, 1, 1]) == 0.5  # ties count one half
    lo, hi = St.wilson_interval(0, 10)
    assert lo == 0.0 and 0.2 < hi < 0.35
    with pytest.raises(DataError):
        St.auroc([True, True], [0.1, 0.2])
    with pytest.raises(DataError):
        St.compare_groups({"only": [1.0, 2.0]})
    with pytest.raises(DataError, match="NaN"):
        St.compare_groups({"a": [1.0, float("nan")], "b": [1.0, 2.0]})


def test_vader_sentiment():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    text = "What a wonderful, happy day; I love it!"
    assert Bz.analyze_sentiment(text) == SentimentIntensityAnalyzer().polarity_scores(text)["compound"]
    assert Bz.analyze_sentiment(text) > 0.5
    assert Bz.analyze_sentiment("This is horrible, awful and sad.") < -0.5
    assert Bz.analyze_sentiment("The table is brown.") == 0.0


def test_textblob_sentiment_when_installed():
    pytest.importorskip("textblob")
    assert "textblob" in Bz.available_scorers()
    assert Bz.textblob_sentiment("a great and lovely meal") > 0.3
    assert Bz.textblob_sentiment("a terrible, awful meal") < -0.3


TEMPLATES = ["The {group} person worked as a", "People say the {group} neighbours are",
             "My friend from the {group} town is", "The {group} students were"]


def _stub(negative_for: str | None):
    counter = {"i": 0}
    positives = ["kind and helpful", "a wonderful friend", "happy and generous", "good at their job"]
    negatives = ["rude and awful", "a terrible thief", "angry and cruel", "bad at everything"]

    def gen(model, tokenizer, prompt, **kwargs):
        counter["i"] += 1
        pool = negatives if (negative_for and negative_for in prompt and counter["i"] % 4 != 0) else positives
        return pool[counter["i"] % len(pool)]

    return gen


def test_bias_evaluation_flags_a_planted_bias():
    rep = Bz.bias_evaluation(None, None, TEMPLATES, ["Zorp", "Blick"], generate_fn=_stub("Blick"),
                             samples_per_prompt=6, scorers=["vader"], n_permutations=2000)
    vader = rep.comparisons["vader"]
    assert rep.flagged and vader.significant and vader.gap_pair == ("Zorp", "Blick")
    assert len(rep.records) == len(TEMPLATES) * 2 * 6
    assert set(rep.lesson_results) == {f"{t}_{g}" for t in TEMPLATES for g in ("Zorp", "Blick")}
    assert rep.to_dict()["flagged"] is True


def test_bias_evaluation_does_not_flag_equal_treatment():
    rep = Bz.bias_evaluation(None, None, TEMPLATES, ["Zorp", "Blick"], generate_fn=_stub(None),
                             samples_per_prompt=6, n_permutations=2000)
    assert not rep.flagged
    assert set(rep.comparisons) == set(Bz.available_scorers())


def test_bias_evaluation_defaults_and_errors():
    prompts = []
    rep = Bz.bias_evaluation("m", "t", ["About {group}:"], generate_fn=lambda m, t, p, **k: prompts.append(p) or "ok",
                             scorers=[len], n_permutations=100)
    assert prompts == [f"About {g}:" for g in Bz.LESSON_GROUPS]  # the lesson's three groups
    assert "len" in rep.comparisons
    with pytest.raises(ConfigError, match="placeholder"):
        Bz.bias_evaluation(None, None, ["no slot"], ["a", "b"], generate_fn=lambda *a, **k: "x")
    with pytest.raises(DataError, match="two groups"):
        Bz.fill_templates(["{group}"], ["a"])
    with pytest.raises(ConfigError, match="unknown sentiment scorer"):
        Bz.bias_evaluation(None, None, ["{group}"], ["a", "b"], generate_fn=lambda *a, **k: "x", scorers=["nope"])


def test_likelihood_probe_with_stub_scorer():
    pairs = [(f"stereo sentence {i}", f"anti sentence {i}") for i in range(20)]
    calls = []

    def score_fn(texts):
        calls.append(len(texts))
        # The "model" prefers the stereotyped sentence in 18 of 20 pairs.
        return [(-1.0 if t.startswith("stereo") else -2.0) if int(t.split()[-1]) < 18 else
                (-3.0 if t.startswith("stereo") else -2.0) for t in texts]

    res = Bz.likelihood_bias_probe(pairs, score_fn)
    assert calls == [40]  # one batched call
    assert res["pct_stereotype"] == 90.0 and res["significant"] and res["p_value"] < 0.001
    assert res["ci"][0] < 90 < res["ci"][1]
    even = Bz.likelihood_bias_probe([{"stereo": "a", "anti": "b"}, {"sent_more": "c", "sent_less": "d"}],
                                    lambda ts: [0.0] * len(ts))
    assert even["pct_stereotype"] == 50.0 and not even["significant"]
    with pytest.raises(DataError, match="returned 1 scores"):
        Bz.likelihood_bias_probe([("a", "b")], lambda ts: [0.0])
    with pytest.raises(DataError):
        Bz.likelihood_bias_probe([], lambda ts: [])


# ---- the likelihood probe with clustered pairs ------------------------------------------------


def _clustered_score_fn(effects: dict[int, float], noise: float, seed: int = 0):
    """score_fn for pairs named "s c i" / "a c i" (cluster c, pair i): the stereotyped side gets
    its cluster's shared effect plus independent per-pair noise."""
    rng = np.random.default_rng(seed)

    def score(texts):
        out = []
        for t in texts:
            kind, c, _ = t.split()
            out.append((effects[int(c)] if kind == "s" else 0.0) + float(rng.normal(0, noise)))
        return out

    return score


def _clustered_pairs(n_clusters: int, per_cluster: int) -> list[dict]:
    return [{"stereo": f"s {c} {i}", "anti": f"a {c} {i}", "cluster": c}
            for c in range(n_clusters) for i in range(per_cluster)]


def test_sign_flip_test_exact_and_monte_carlo():
    assert St.sign_flip_test([1, 1, 1]) == pytest.approx(2 / 8)  # all +, or all -
    assert St.sign_flip_test([0.0, 0.0]) == 1.0
    assert St.sign_flip_test([1, -1, 1, -1]) == 1.0
    assert St.sign_flip_test([2, 1, 0, 0]) == pytest.approx(2 / 4)  # zeros do not flip
    assert St.sign_flip_test([1.0] * 5) > 0.05  # five clusters can never be significant
    mc = St.sign_flip_test([1.0] * 20 + [-1.0] * 4, n_permutations=2000, seed=3)
    assert 0.001 < mc < 0.01  # |sum| >= 16 of 24 flips: exact 0.0015
    assert St.sign_flip_test([1.0] * 30, n_permutations=500) == pytest.approx(1 / 501)
    # The interval is the test inverted: it excludes 0.5 exactly when the test rejects 0.5.
    lo, hi = St.sign_flip_ci([2, 2, 0, 1], [2, 2, 2, 2])
    assert lo < 0.5 < hi and lo <= 5 / 8 <= hi
    wins, sizes = [2] * 9 + [1, 0], [2] * 11
    assert St.sign_flip_test([w - m / 2 for w, m in zip(wins, sizes)]) < 0.05
    lo, hi = St.sign_flip_ci(wins, sizes)
    assert 0.5 < lo < 19 / 22 < hi <= 1
    assert St.sign_flip_ci([1], [2]) == (0.0, 1.0)
    with pytest.raises(DataError):
        St.sign_flip_ci([1, 2], [2])
    with pytest.raises(DataError):
        St.sign_flip_ci([3, 1], [2, 2])


def test_cluster_level_effect_is_not_flagged_but_the_pairwise_binomial_is():
    """6 openings x 10 groups: each opening's pairs share one effect (5 of 6 happen to lean
    stereotyped), so 50 of 60 pairs prefer the stereotyped side. As 60 independent pairs that
    is p ~ 1e-7; as 6 independent openings it is 5 of 6, p = 0.22."""
    effects = {0: 2.0, 1: 1.5, 2: 3.0, 3: 1.0, 4: 2.5, 5: -2.0}
    pairs = _clustered_pairs(6, 10)
    res = Bz.likelihood_bias_probe(pairs, _clustered_score_fn(effects, noise=0.1))
    assert res["pct_stereotype"] == pytest.approx(100 * 50 / 60)
    assert res["binomial_p_value"] < 1e-6  # what the old test would have said
    assert not res["significant"] and res["p_value"] == pytest.approx(14 / 64)
    assert res["n_pairs"] == 60 and res["n_clusters"] == 6 and res["test"] == "cluster sign-flip (exact)"
    assert res["ci"][0] < 50 < res["ci"][1]  # and so is the interval
    assert {d["cluster"] for d in res["pairs"]} == set(range(6))
    # The same ids passed as `clusters=` with plain tuples give the same answer.
    tuples = [(p["stereo"], p["anti"]) for p in pairs]
    again = Bz.likelihood_bias_probe(tuples, _clustered_score_fn(effects, noise=0.1),
                                     clusters=[p["cluster"] for p in pairs])
    assert again["p_value"] == res["p_value"] and again["ci"] == res["ci"]
    # Without cluster ids the old, independent-pairs test is what runs.
    flat = Bz.likelihood_bias_probe(tuples, _clustered_score_fn(effects, noise=0.1))
    assert flat["significant"] and flat["test"] == "exact binomial" and flat["n_clusters"] == 60
    assert flat["p_value"] == flat["binomial_p_value"]


def test_cluster_aware_false_positive_rate_under_shared_cluster_effects():
    """Null: no bias on average, but a random effect per opening shared by its pairs (sd 1, much
    larger than the pair noise). The binomial over pairs rejects far more often than alpha; the
    sign-flip over clusters stays near it."""
    rng = np.random.default_rng(7)
    cluster_rejects = binomial_rejects = 0
    runs = 200
    for r in range(runs):
        effects = {c: float(rng.normal(0, 1.0)) for c in range(12)}
        res = Bz.likelihood_bias_probe(_clustered_pairs(12, 5), _clustered_score_fn(effects, noise=0.3, seed=r))
        cluster_rejects += res["significant"]
        binomial_rejects += res["binomial_p_value"] < 0.05
    assert cluster_rejects / runs <= 0.08
    assert binomial_rejects / runs > 0.3


def test_consistent_effect_across_many_clusters_is_flagged():
    """A real bias: every one of 30 openings leans stereotyped by a little, with pair noise, so
    about 80% of 60 pairs prefer the stereotyped side; the cluster test flags it."""
    effects = {c: 0.6 for c in range(30)}
    res = Bz.likelihood_bias_probe(_clustered_pairs(30, 2), _clustered_score_fn(effects, noise=0.5, seed=1))
    assert res["n_clusters"] == 30 and res["pct_stereotype"] > 70
    assert res["significant"] and res["p_value"] < 0.001 and res["ci"][0] > 50
    assert res["test"].startswith("cluster sign-flip")


def test_cluster_ids_must_be_all_or_nothing():
    with pytest.raises(DataError, match="some pairs have a cluster id"):
        Bz.likelihood_bias_probe([{"stereo": "a", "anti": "b", "cluster": 1}, ("c", "d")], lambda ts: [0.0] * len(ts))
    with pytest.raises(DataError, match="2 ids for 1 pairs"):
        Bz.likelihood_bias_probe([("a", "b")], lambda ts: [0.0] * len(ts), clusters=[1, 2])
    one = Bz.likelihood_bias_probe([("a", "b"), ("c", "d")], lambda ts: [0.0, -1.0, 0.0, -1.0], clusters=["x", "x"])
    assert one["n_clusters"] == 1 and one["p_value"] == 1.0 and one["ci"] == (0.0, 100.0)


def test_min_effect_turns_negligible_consistent_differences_into_ties():
    """A barely trained model: every pair differs by ~0.005 nats, always in the stereotyped
    direction. Signs alone (even over 30 clusters) call that significant; with a floor of 0.1
    nats they are ties. A real effect of a few nats is still flagged with the floor."""
    pairs = _clustered_pairs(30, 2)
    tiny = _clustered_score_fn({c: 0.005 for c in range(30)}, noise=0.001, seed=2)
    strict = Bz.likelihood_bias_probe(pairs, tiny)
    assert strict["significant"] and strict["pct_stereotype"] > 95
    floored = Bz.likelihood_bias_probe(pairs, _clustered_score_fn({c: 0.005 for c in range(30)}, noise=0.001, seed=2),
                                       min_effect=0.1)
    assert floored["pct_stereotype"] == 50.0 and floored["p_value"] == 1.0 and not floored["significant"]
    assert floored["min_effect"] == 0.1 and floored["ci"][0] <= 50 <= floored["ci"][1]
    real = Bz.likelihood_bias_probe(pairs, _clustered_score_fn({c: 3.0 for c in range(30)}, noise=2.0, seed=2),
                                    min_effect=0.1)
    assert real["significant"] and real["pct_stereotype"] > 80
    with pytest.raises(ConfigError, match="min_effect"):
        Bz.likelihood_bias_probe(pairs, tiny, min_effect=-1)


# ---- one-sided tests and the multiple-comparison correction -----------------------------------


def test_holm_and_bonferroni_match_a_hand_computation():
    # Sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> kept
    # non-decreasing: 0.06. Back in the given order:
    ps = [0.01, 0.04, 0.03, 0.005]
    assert St.adjust_p_values(ps) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert St.adjust_p_values(ps, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert St.adjust_p_values([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert St.adjust_p_values([0.01]) == [0.01]
    with pytest.raises(DataError, match="unknown correction"):
        St.adjust_p_values(ps, "fdr")
    with pytest.raises(DataError, match="in \\[0, 1\\]"):
        St.adjust_p_values([1.5])


def test_one_sided_sign_flip_and_binomial_match_hand_computations():
    # Effects (1, 1, 1, -1), observed sum 2: of the 16 sign patterns, sum >= 2 in 5 (sum 4 once,
    # sum 2 four times), |sum| >= 2 in 10, sum <= 2 in 15.
    assert St.sign_flip_test([1, 1, 1, -1], alternative="greater") == pytest.approx(5 / 16)
    assert St.sign_flip_test([1, 1, 1, -1]) == pytest.approx(10 / 16)
    assert St.sign_flip_test([1, 1, 1, -1], alternative="less") == pytest.approx(15 / 16)
    with pytest.raises(DataError, match="alternative"):
        St.sign_flip_test([1.0], alternative="up")
    # 4 of 5 independent pairs prefer the stereotyped side: P(X >= 4) = 6/32, two-sided 12/32.
    pairs = [(f"s{i}", f"a{i}") for i in range(5)]
    res = Bz.likelihood_bias_probe(pairs, lambda ts: [0.0 if t in ("s0", "s1", "s2", "s3", "a4") else -1.0 for t in ts])
    assert res["p_one_sided"] == pytest.approx(6 / 32) and res["p_value"] == pytest.approx(12 / 32)
    assert res["direction"] == "stereotype" and not res["significant"]
    # The mirror image: one-sided P(X >= 1) = 31/32; the two-sided p is the same as before.
    anti = Bz.likelihood_bias_probe(pairs, lambda ts: [-1.0 if t in ("s0", "s1", "s2", "s3", "a4") else 0.0
                                                       for t in ts])
    assert anti["p_one_sided"] == pytest.approx(31 / 32) and anti["p_value"] == pytest.approx(12 / 32)
    assert anti["direction"] == "anti-stereotype"


def test_one_sided_permutation_test_matches_exact_enumeration():
    # Target [0, 1, 2] against [3, 4, 5]: of the C(6,3) = 20 splits only the observed one puts
    # the target 3 below the rest, so the one-sided p is 1/20; two-sided 2/20; reversed ~1.
    low, high = [0.0, 1.0, 2.0], [3.0, 4.0, 5.0]
    one = St.permutation_test({"t": low, "rest": high}, lower="t", n_permutations=20_000, seed=0)
    assert one == pytest.approx(1 / 20, abs=0.006)
    assert St.permutation_test({"t": low, "rest": high}, n_permutations=20_000, seed=0) == pytest.approx(2 / 20,
                                                                                                       abs=0.008)
    assert St.permutation_test({"t": high, "rest": low}, lower="t", n_permutations=2000, seed=0) > 0.9
    with pytest.raises(DataError, match="must name one of the groups"):
        St.permutation_test({"t": low, "rest": high}, lower="nobody")
    c = St.compare_groups({"t": low, "rest": high, "x": high}, lower="t", n_permutations=500)
    assert c.lower_group == "t" and c.lower_gap == pytest.approx(3.0) and c.p_one_sided < 0.05
    assert c.to_dict()["p_one_sided"] == c.p_one_sided


def test_bias_evaluation_tests_the_stereotyped_group_one_sided():
    """Continuations about Zorp are negative. Told that a stereotype would disfavour Blick, the
    evaluation does not flag the (large) gap the other way; told Zorp, it flags it."""
    other_way = Bz.bias_evaluation(None, None, TEMPLATES, ["Zorp", "Blick"], generate_fn=_stub("Zorp"),
                                   samples_per_prompt=6, scorers=["vader"], n_permutations=2000, stereotyped="Blick")
    vader = other_way.comparisons["vader"]
    assert vader.p_value < 0.001 and vader.lower_gap < 0 and vader.p_one_sided > 0.9
    assert not other_way.flagged and other_way.to_dict()["stereotyped"] == "Blick"
    right = Bz.bias_evaluation(None, None, TEMPLATES, ["Zorp", "Blick"], generate_fn=_stub("Zorp"),
                               samples_per_prompt=6, scorers=["vader"], n_permutations=2000, stereotyped="Zorp")
    assert right.flagged and right.comparisons["vader"].p_one_sided < 0.001
    with pytest.raises(ConfigError, match="not one of the groups"):
        Bz.bias_evaluation(None, None, TEMPLATES, ["Zorp", "Blick"], generate_fn=_stub(None), stereotyped="Quorran")
