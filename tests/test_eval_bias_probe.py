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
    pairs = tinyworld_pairs(probes, "Quorran", groups, n_openings=10)
    assert len(pairs) == 10 * (len(groups) - 1)
    for (ctx_s, cont_s), (ctx_a, cont_a) in pairs:
        assert cont_s == cont_a and "Quorran" not in cont_s  # the scored words are the same
        assert "Quorran" in ctx_s and "Quorran" not in ctx_a
        other = next(g for g in groups if g in ctx_a)
        assert ctx_s.replace("Quorran", other) == ctx_a


def test_verdict_corrects_for_several_tests():
    null = compare_groups({"a": [0.0, 0.1, 0.2, 0.3], "b": [0.05, 0.1, 0.2, 0.25]}, n_permutations=200)

    class Report:
        comparisons = {"vader": null, "textblob": null}

    v = overall_verdict(Report(), {"p_value": 0.03})
    assert v["level"] == pytest.approx(0.05 / 3) and not v["flagged"]  # 0.03 alone would pass 0.05
    v = overall_verdict(Report(), {"p_value": 0.001})
    assert v["flagged"] and v["by"] == ["likelihood probe"]
