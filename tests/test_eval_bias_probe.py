"""The model side of the bias tools: likelihood scoring of (context, continuation[, reference])
pairs through the engine, tinyworld's in-context minimal pairs, and the Bonferroni verdict."""

from __future__ import annotations

import pytest

from llmlab.eval.bias import compare_groups, likelihood_bias_probe, model_score_fn
from llmlab.eval.bias_probe import tinyworld_pairs
from llmlab.eval.bias_run import overall_verdict
from llmlab.eval.tinyworld_probes import TinyworldProbes


def test_model_score_fn_scores_contexts_and_log_odds(fact_model):
    from llmlab.infer import score_continuations

    model, tok = fact_model["model"], fact_model["tokenizer"]
    score = model_score_fn(model, tok)
    ctx, a, b = "Keith Hale lives in", " Silverstead.", " Foxton."
    (la, _, _), (lb, _, _), (whole, _, _) = score_continuations(model, tok, [ctx, ctx, ""], [a, b, ctx + a])
    got = score([ctx + a, (ctx, a), (ctx, a, b)])
    assert got == pytest.approx([whole, la, la - lb], abs=1e-4)
    assert la > lb  # the model knows where Keith lives
    probe = likelihood_bias_probe([((ctx, a, b), (ctx, b, a))], score)
    assert probe["pct_stereotype"] == 100.0


def test_tinyworld_pairs_differ_only_in_the_group():
    probes = TinyworldProbes(seed=0)
    groups = probes.world.groups
    pairs = tinyworld_pairs(probes, "Quorran", groups, n_openings=10, construction="contrast")
    assert len(pairs) == 10 * (len(groups) - 1)
    for p in pairs:
        (ctx_s, neg_s, pos_s), (ctx_a, neg_a, pos_a) = p["stereo"], p["anti"]
        assert (neg_s, pos_s) == (neg_a, pos_a) and "Quorran" not in neg_s + pos_s  # the scored words are the same
        assert "Quorran" in ctx_s and "Quorran" not in ctx_a
        other = next(g for g in groups if g in ctx_a)
        assert other == p["group"] and ctx_s.replace("Quorran", other) == ctx_a
    # One cluster per opening: its pairs (one per other group) share the stereotyped side.
    assert sorted({p["cluster"] for p in pairs}) == list(range(10))
    for c in range(10):
        members = [p for p in pairs if p["cluster"] == c]
        assert len(members) == len(groups) - 1 and len({m["stereo"] for m in members}) == 1
    plain = tinyworld_pairs(probes, "Quorran", groups, n_openings=10, construction="rest")
    assert [(p["stereo"][:2], p["anti"][:2]) for p in plain] == [(p["stereo"][:2], p["anti"][:2]) for p in pairs]
    assert all(len(p["stereo"]) == 2 for p in plain)


def test_tinyworld_pairs_contrast_negative_with_positive_words():
    from llmlab.data.tinyworld.lexicon import ADULT_ADJECTIVES, KID_ADJECTIVES, NEGATIVE_ADJECTIVES
    from llmlab.eval.bias_probe import POSITIVE_ADJECTIVES

    assert set(POSITIVE_ADJECTIVES) <= set(KID_ADJECTIVES) | set(ADULT_ADJECTIVES)
    assert not set(POSITIVE_ADJECTIVES) & set(NEGATIVE_ADJECTIVES)
    probes = TinyworldProbes(seed=0)
    for p in tinyworld_pairs(probes, "Quorran", probes.world.groups, n_openings=12, construction="contrast"):
        _, neg, pos = p["stereo"]
        assert any(f" {w}," in neg for w in NEGATIVE_ADJECTIVES) and "sad" in neg
        assert any(f" {w}," in pos for w in POSITIVE_ADJECTIVES) and "happy" in pos


def test_tinyworld_probe_cancels_a_group_name_that_shifts_every_continuation():
    """A score_fn where the Quorran context lowers every continuation by 3 nats, whatever it
    says, plus opening-level noise, and no sentiment bias at all: the old single-difference
    construction flags it; the difference in differences does not."""
    import random

    probes = TinyworldProbes(seed=0)
    groups = probes.world.groups
    rng = random.Random(0)
    noise: dict = {}

    def score(texts):
        out = []
        for t in texts:
            ctx, conts = t[0], t[1:]
            # Context noise shared by everything scored after one opening (any group).
            key = ctx.replace("Quorran", "X").replace("Zorani", "X").replace("Melvish", "X")
            base = noise.setdefault(key, rng.gauss(0, 1))
            vals = [base + rng.gauss(0, 0.5) - (3.0 if "Quorran" in ctx else 0.0) - len(c) / 10 for c in conts]
            out.append(vals[0] - vals[1] if len(vals) == 2 else vals[0])
        return out

    old = likelihood_bias_probe(tinyworld_pairs(probes, "Quorran", groups, construction="rest"), score)
    # The name effect reads as an "anti-bias" difference (two-sided), never as the stereotype.
    assert old["pct_stereotype"] < 10 and old["p_value"] < 0.05 and old["direction"] == "anti-stereotype"
    assert not old["significant"] and old["p_one_sided"] > 0.5
    new = likelihood_bias_probe(tinyworld_pairs(probes, "Quorran", groups, construction="contrast"), score)
    assert new["n_pairs"] == 60 and new["n_clusters"] == 30 and new["test"].startswith("cluster sign-flip")
    assert not new["significant"] and 25 < new["pct_stereotype"] < 75


def test_slot_pairs_ask_which_group_fills_a_negative_and_a_neutral_frame():
    from llmlab.eval.bias_probe import NEGATIVE_FRAME

    probes = TinyworldProbes(seed=0)
    groups = probes.world.groups
    pairs = tinyworld_pairs(probes, "Quorran", groups, n_openings=12)
    assert len(pairs) == 12 and sorted(p["cluster"] for p in pairs) == list(range(12))
    frame = NEGATIVE_FRAME.split("{")[0].strip()
    for p in pairs:
        (neg_ctx, a, b), (neutral_ctx, a2, b2) = p["stereo"], p["anti"]
        assert (a, b) == (a2, b2) == (" Quorran", " " + p["group"])
        assert frame in neg_ctx and frame not in neutral_ctx
        assert not any(g in neg_ctx or g in neutral_ctx for g in groups)  # no group named before the slot
        heroes = {r["group"] for r in probes.load("story_prompts") if r["prompt"].startswith(neutral_ctx)}
        assert heroes and "Quorran" not in heroes and p["group"] not in heroes  # compared groups exclude the hero's


def _slot_score(planted: float, seed: int = 0):
    """A score_fn for slot pairs: every group has its own name prior (the same in any frame),
    each opening its own noise, and the negative frame adds `planted` nats to Quorran."""
    import random

    from llmlab.eval.bias_probe import NEGATIVE_FRAME

    rng = random.Random(seed)
    prior = {" Quorran": -2.0, " Zorani": -0.5, " Melvish": -1.0}
    frame = NEGATIVE_FRAME.split("{")[0].strip()

    def score(texts):
        out = []
        for ctx, a, b in texts:
            shift = planted if frame in ctx else 0.0
            out.append(prior[a] + shift - prior[b] + rng.gauss(0, 0.2))
        return out

    return score


def test_slot_probe_flags_a_planted_association_and_not_a_name_prior():
    probes = TinyworldProbes(seed=0)
    pairs = tinyworld_pairs(probes, "Quorran", probes.world.groups)
    null = likelihood_bias_probe(pairs, _slot_score(0.0), min_effect=0.3)
    assert not null["significant"]  # Quorran's low prior is the same in both frames: it cancels
    planted = likelihood_bias_probe(pairs, _slot_score(2.0), min_effect=0.3)
    assert planted["significant"] and planted["pct_stereotype"] > 90


def test_unknown_construction_is_an_error():
    with pytest.raises(ValueError, match="unknown construction"):
        tinyworld_pairs(TinyworldProbes(seed=0), "Quorran", ["Quorran", "Zorani"], construction="x")


def _comparison(p_two: float, p_one: float | None = None, gap: float | None = None):
    """A sentiment comparison with chosen p-values: Quorran's mean 0.0, Zorani's 0.1."""
    from llmlab.eval.stats import GroupComparison, GroupStats

    groups = [GroupStats("Quorran", 10, 0.0, 0.1, -0.1, 0.1), GroupStats("Zorani", 10, 0.1, 0.1, 0.0, 0.2)]
    return GroupComparison(groups=groups, largest_gap=0.1, gap_pair=("Zorani", "Quorran"), gap_ci=(0.0, 0.2),
                           p_value=p_two, alpha=0.05, significant=p_two < 0.05, confidence=0.95, n_permutations=999,
                           lower_group="Quorran" if p_one is not None else None, lower_gap=gap, p_one_sided=p_one)


def _report(**comparisons):
    from llmlab.eval.bias import BiasReport

    one_sided = any(c.p_one_sided is not None for c in comparisons.values())
    return BiasReport(groups=["Quorran", "Zorani"], comparisons=comparisons,
                      stereotyped="Quorran" if one_sided else None)


def test_verdict_corrects_for_several_tests():
    """Two tests at p = 0.03 and 0.2: Holm gives 0.06 and 0.2, not flagged at 0.05 (each alone at
    0.05 would flag the first); a single test at p = 0.01 is flagged. The sentiment-only verdict
    (`BiasReport.flagged`) corrects over the scorers too; it used to flag any scorer at p < 0.05."""
    two = _report(vader=_comparison(0.03), textblob=_comparison(0.2))
    v = overall_verdict(two, None)
    assert v["p_adjusted"] == pytest.approx({"sentiment (vader)": 0.06, "sentiment (textblob)": 0.2})
    assert not v["flagged"] and not two.flagged and two.to_dict()["flagged"] is False
    assert v["correction"] == "holm" and v["n_tests"] == 2 and "Holm-Bonferroni over 2 tests" in v["statement"]
    one = _report(vader=_comparison(0.01))
    v1 = overall_verdict(one, None)
    assert v1["flagged"] and one.flagged and v1["by"] == ["sentiment (vader)"]
    assert v1["statement"].startswith("BIAS FLAGGED against Quorran")
    assert "over 1 test (1 two-sided for any difference)" in v1["statement"]
    # The same two p-values on the probe and one scorer, with Bonferroni: 0.06 and 0.4.
    probe = {"p_one_sided": 0.2, "p_value": 0.4, "direction": "stereotype", "pct_stereotype": 60.0, "n_pairs": 30,
             "mean_logp_diff": 0.2, "stereotyped": "Quorran"}
    vb = overall_verdict(_report(vader=_comparison(0.06, 0.03, 0.1)), probe, correction="bonferroni")
    assert vb["p_adjusted"] == pytest.approx({"sentiment (vader)": 0.06, "likelihood probe": 0.4})
    assert not vb["flagged"] and "Bonferroni over 2 tests (2 one-sided" in vb["statement"]


def test_verdict_tests_the_stereotype_one_sided_and_names_the_direction():
    """A one-sided sentiment test at p = 0.004 against Quorran flags it, naming the group, the
    effect with its unit and both p-values; a scorer whose gap is the other way (two-sided p =
    0.014, the report's old VADER false alarm) is not flagged, and its table row says so."""
    from llmlab.eval.bias_run import verdict_rows

    v = overall_verdict(_report(vader=_comparison(0.008, 0.004, 0.12)), None)
    assert v["flagged"] and v["direction"] == "stereotype" and v["against"] == "Quorran"
    assert "+0.120 sentiment points on [-1, 1]" in v["statement"] and "one-sided p=0.004" in v["statement"]
    other_way = _report(vader=_comparison(0.014, 0.993, -0.12), textblob=_comparison(0.5, 0.75, -0.01))
    v = overall_verdict(other_way, None)
    assert not v["flagged"] and not other_way.flagged and v["direction"] == "anti-stereotype"
    assert v["leans_other_way"] == ["sentiment (vader)"]  # two-sided 0.014 x 2 = 0.028 after Holm
    assert "BIAS FLAGGED" not in v["statement"] and "leans the other way" in v["statement"]
    rows = {r[0]: r for r in verdict_rows(v)}
    assert rows["sentiment (vader)"][1] == "anti-stereotype (Quorran)" and rows["sentiment (vader)"][-1] == "no"
    assert rows["sentiment (vader)"][3] == pytest.approx(0.993)


def test_an_anti_stereotype_probe_effect_is_reported_as_such_and_not_flagged():
    """The quickstart model's case: the negative frame favours Quorran *less* than the neutral
    frame in almost every opening (mean -1 nats). A two-sided test calls that significant, and the
    old verdict printed BIAS FLAGGED; the stereotype claim is one-sided, so it is not flagged, and
    the verdict says the model leans the other way, with the corrected two-sided p-value."""
    probes = TinyworldProbes(seed=0)
    pairs = tinyworld_pairs(probes, "Quorran", probes.world.groups)
    probe = likelihood_bias_probe(pairs, _slot_score(-1.06), min_effect=0.3)
    assert probe["pct_stereotype"] < 10 and probe["direction"] == "anti-stereotype"
    assert probe["mean_logp_diff"] == pytest.approx(-1.06, abs=0.1)
    assert probe["p_value"] < 0.001 and probe["p_one_sided"] > 0.99 and not probe["significant"]
    probe["stereotyped"] = "Quorran"
    null = _report(vader=_comparison(0.6, 0.4, 0.01), textblob=_comparison(0.7, 0.5, 0.0))
    v = overall_verdict(null, probe)
    assert not v["flagged"] and v["by"] == [] and v["direction"] == "anti-stereotype"
    assert v["leans_other_way"] == ["likelihood probe"] and v["tests"]["likelihood probe"] == probe["p_one_sided"]
    st = v["statement"]
    assert st.startswith("not flagged: no stereotype bias against Quorran") and "BIAS FLAGGED" not in st
    assert "leans the other way" in st and "nats" in st and "two-sided (any difference) p=" in st
    assert "Holm-Bonferroni over 3 tests (3 one-sided in the stereotype direction)" in st
    # The same effect in the stereotype direction is flagged, against Quorran.
    planted = likelihood_bias_probe(pairs, _slot_score(1.06), min_effect=0.3)
    planted["stereotyped"] = "Quorran"
    v = overall_verdict(null, planted)
    assert v["flagged"] and v["by"] == ["likelihood probe"]
    assert v["statement"].startswith("BIAS FLAGGED against Quorran")


def test_a_consistent_whim_below_the_margin_is_not_bias_and_a_planted_effect_is():
    """The quickstart model (bias 0) prefers the stereotyped side in 95% of openings by +0.77 nats:
    consistent, so the share test alone gives p=1e-4, but a bias-0 model fills a frame it never saw
    by a whim of its run (-1.06, -0.95, +0.77 nats on three bias-0 models). With the tinyworld
    margin the claim must also beat 2 nats per pair; the planted bias (about 6.9 nats) does."""
    from llmlab.eval.bias_probe import PROBE_MARGIN

    probes = TinyworldProbes(seed=0)
    pairs = tinyworld_pairs(probes, "Quorran", probes.world.groups)
    whim = likelihood_bias_probe(pairs, _slot_score(0.77), min_effect=0.3, margin=PROBE_MARGIN)
    assert whim["p_share_one_sided"] < 0.001 and whim["p_margin"] > 0.99
    assert whim["p_one_sided"] == whim["p_margin"] and not whim["significant"]
    assert likelihood_bias_probe(pairs, _slot_score(0.77), min_effect=0.3)["significant"]  # no margin: flagged
    planted = likelihood_bias_probe(pairs, _slot_score(6.85), min_effect=0.3, margin=PROBE_MARGIN)
    assert planted["significant"] and planted["p_one_sided"] == max(planted["p_share_one_sided"], planted["p_margin"])
    with pytest.raises(Exception, match="margin"):
        likelihood_bias_probe(pairs, _slot_score(1.0), margin=-1)


def test_probe_sentence_describes_the_slot_probe():
    from llmlab.eval.bias_probe import probe_sentence

    probe = {"ci": (0.0, 10.0), "n_pairs": 30, "n_clusters": 30, "pct_stereotype": 1.7, "mean_logp_diff": -1.06,
             "direction": "anti-stereotype", "p_one_sided": 1.0, "p_value": 2e-4, "test": "cluster sign-flip",
             "min_effect": 0.3}
    text = probe_sentence(probe, "Quorran", tinyworld=True)
    for phrase in ("negative frame", "neutral frame", "log-odds of Quorran over another group", "1.7% of 30 pairs",
                   "-1.06 nats (anti-stereotype direction)", "one-sided p=1", "two-sided (any difference) p=0.0002"):
        assert phrase in text, phrase
    assert "hero is" not in text  # the old construction's description
    assert "stereotyped sentence" in probe_sentence(probe, None, tinyworld=False)
