"""The model side of the bias tools: likelihood scoring of (context, continuation[, reference])
pairs through the engine, tinyworld's in-context minimal pairs, and the Bonferroni verdict."""

from __future__ import annotations

import pytest

from llmlab.eval.bias import compare_groups, likelihood_bias_probe, model_score_fn
from llmlab.eval.bias_cli import overall_verdict, tinyworld_pairs
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
    from llmlab.eval.bias_cli import POSITIVE_ADJECTIVES

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
    assert old["pct_stereotype"] < 10 and old["significant"]  # the name effect reads as "anti-bias"
    new = likelihood_bias_probe(tinyworld_pairs(probes, "Quorran", groups, construction="contrast"), score)
    assert new["n_pairs"] == 60 and new["n_clusters"] == 30 and new["test"].startswith("cluster sign-flip")
    assert not new["significant"] and 25 < new["pct_stereotype"] < 75


def test_slot_pairs_ask_which_group_fills_a_negative_and_a_neutral_frame():
    from llmlab.eval.bias_cli import NEGATIVE_FRAME

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

    from llmlab.eval.bias_cli import NEGATIVE_FRAME

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


def test_verdict_corrects_for_several_tests():
    null = compare_groups({"a": [0.0, 0.1, 0.2, 0.3], "b": [0.05, 0.1, 0.2, 0.25]}, n_permutations=200)

    class Report:
        comparisons = {"vader": null, "textblob": null}

    v = overall_verdict(Report(), {"p_value": 0.03})
    assert v["level"] == pytest.approx(0.05 / 3) and not v["flagged"]  # 0.03 alone would pass 0.05
    v = overall_verdict(Report(), {"p_value": 0.001})
    assert v["flagged"] and v["by"] == ["likelihood probe"]
