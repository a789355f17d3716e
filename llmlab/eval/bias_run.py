"""One bias evaluation as `llmlab eval bias` and the HTML report run it: templates (a file or
tinyworld's), sentiment per group plus the likelihood probe (`run_bias`), the verdict (`summary`),
and the tables and plot that show them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmlab.eval.bias import bias_verdict
from llmlab.eval.bias_probe import PROBE_MARGIN, PROBE_MIN_EFFECT, tinyworld_pairs

overall_verdict = bias_verdict  # the name `llmlab eval bias` gave it


def load_templates(path: str | None, probes: Any) -> tuple[list[dict[str, Any]], list[str] | None, str | None]:
    """Templates as {template, kind} records, the groups they name (if any) and the group a planted
    bias would disfavour (tinyworld only). A file is JSONL ({"template": ...} per line, optional
    "kind", "groups") or text (one template per line); every template needs a {group} slot."""
    from llmlab.errors import DataError

    if path is None:
        rows = probes.load("bias_templates")
    else:
        p = Path(path)
        if not p.is_file():
            raise DataError(f"templates file not found: {p}")
        if p.suffix in (".jsonl", ".json"):
            from llmlab.eval.tinyworld_probes import read_jsonl

            rows = read_jsonl(p)
        else:
            rows = [{"template": line.strip()} for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise DataError(f"no templates in {path}")
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict) or not isinstance(r.get("template"), str):
            raise DataError(f"template {i}: needs a string \"template\"")
    groups = rows[0].get("groups")
    return rows, (list(groups) if isinstance(groups, list) else None), rows[0].get("bias_group")


def wrap_template(row: dict[str, Any], prompt_format: str) -> str:
    """Questions become a dialogue turn for pre-trained models ("User: ...\\nAssistant:")."""
    t = row["template"]
    if prompt_format == "auto" and row.get("kind") == "question":
        return f"User: {t}\nAssistant:"
    return t


def run_bias(model: Any, tokenizer: Any, rows: list[dict[str, Any]], groups: list[str], *, bias_group: str | None,
             samples: int, temperature: float, max_new_tokens: int, prompt_format: str, seed: int,
             n_permutations: int = 5000, pairs: list | None = None, probes: Any = None,
             min_effect: float = PROBE_MIN_EFFECT,
             margin: float | None = None) -> tuple[Any, dict[str, Any] | None]:
    """(BiasReport, likelihood probe or None): sentiment of sampled continuations per group, and the
    probe on `pairs`, or, on tinyworld (`probes` and a `bias_group` among `groups`), on the slot
    pairs of `tinyworld_pairs` with the calibrated PROBE_MARGIN."""
    from llmlab.eval.bias import bias_evaluation, likelihood_bias_probe, model_score_fn

    templates = [wrap_template(r, prompt_format) for r in rows]
    gen: dict[str, Any] = {"temperature": temperature, "max_new_tokens": max_new_tokens, "stop": ["\n\n"]}
    if prompt_format == "chat":
        gen["prompt_format"] = "chat"
    stereotyped = bias_group if bias_group in groups else None  # the direction a one-sided test checks
    report = bias_evaluation(model, tokenizer, templates, groups, samples_per_prompt=samples, seed=seed,
                             n_permutations=n_permutations, stereotyped=stereotyped, **gen)
    built = pairs is None and probes is not None and stereotyped is not None
    if built:
        pairs = tinyworld_pairs(probes, bias_group, groups)
        # A model with a context too short for a sentence cannot be probed with it.
        room = model.config.context_length
        pairs = [p for p in pairs
                 if all(len(tokenizer.encode(x)) < room for side in (p["stereo"], p["anti"]) for x in side[1:])]
    if margin is None:  # the margin is calibrated for the tinyworld construction; given pairs test the share alone
        margin = PROBE_MARGIN if built else 0.0
    probe = (likelihood_bias_probe(pairs, model_score_fn(model, tokenizer), min_effect=min_effect, margin=margin)
             if pairs else None)
    if probe is not None:
        # Whom the stereotyped side disfavours is known only for the pairs built here.
        probe.update(stereotyped=bias_group if built else None, construction="slot" if built else "given pairs")
    return report, probe


def summary(report: Any, probe: dict[str, Any] | None, alpha: float = 0.05, correction: str = "holm") -> dict[str, Any]:
    """The JSON of a bias run: the sentiment report, the probe (without its pairs) and the verdict."""
    out = report.to_dict()
    if probe is not None:
        out["likelihood_probe"] = {k: v for k, v in probe.items() if k != "pairs"}
    out["verdict"] = bias_verdict(report, probe, alpha=alpha, correction=correction)
    return out


def plot_groups(report: Any, path: str | Path, title: str = "", verdict: dict[str, Any] | None = None) -> Path:
    """Per-group mean sentiment with its bootstrap CI, one panel per scorer; the group a scorer's
    test flags after the verdict's correction is drawn red (with no verdict, none is)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comps = report.comparisons
    fig, axes = plt.subplots(1, len(comps), figsize=(4.2 * len(comps), 3.6), squeeze=False)
    for ax, (scorer, comp) in zip(axes[0], comps.items()):
        names = [g.name for g in comp.groups]
        means = [g.mean for g in comp.groups]
        err = [[g.mean - g.ci_low for g in comp.groups], [g.ci_high - g.mean for g in comp.groups]]
        test = next((t for t in (verdict or {}).get("details", []) if t["name"] == f"sentiment ({scorer})"), None)
        colors = ["#c0392b" if test and test["flagged"] and n == test["group"] else "#4a78a8" for n in names]
        ax.bar(names, means, yerr=err, capsize=5, color=colors)
        ax.axhline(0, color="k", lw=0.8)
        said = (f"{test['sided'].split(' ')[0]} p={test['p_value']:.2g}, adjusted {test['p_adjusted']:.2g}: "
                f"{'flagged' if test['flagged'] else 'not flagged'}") if test else \
            f"two-sided p={comp.p_value:.2g}, uncorrected"
        ax.set(title=f"{scorer}: gap {comp.largest_gap:.3f}\n{said}",
               ylabel=f"mean sentiment ({int(round(comp.confidence * 100))}% CI)")
        ax.title.set_fontsize(9)
    if title:
        fig.suptitle(title, fontsize=10)
    from llmlab.eval._plot import save_png

    return save_png(fig, path)


GROUP_COLUMNS = ["scorer", "group", "n", "mean", "std", "95% CI"]


def group_rows(report: Any) -> list[list[Any]]:
    """One GROUP_COLUMNS row per scorer and group: mean sentiment with its bootstrap CI."""
    rows = []
    for scorer, comp in report.comparisons.items():
        for g in comp.groups:
            rows.append([scorer, g.name, g.n, g.mean, g.std, f"[{g.ci_low:.3f}, {g.ci_high:.3f}]"])
    return rows


GAP_COLUMNS = ["scorer", "largest gap", "gap", "95% CI", "p-value (two-sided, any difference)"]


def gap_rows(report: Any) -> list[list[Any]]:
    """Each scorer's largest gap between groups with its CI and uncorrected two-sided p-value."""
    return [[scorer, f"{c.gap_pair[0]} - {c.gap_pair[1]}", c.largest_gap, f"[{c.gap_ci[0]:.3f}, {c.gap_ci[1]:.3f}]",
             c.p_value] for scorer, c in report.comparisons.items()]


def verdict_columns(verdict: dict[str, Any]) -> list[str]:
    from llmlab.eval.bias import CORRECTION_NAMES

    return ["test", "direction", "effect", "p-value", "sided", f"{CORRECTION_NAMES[verdict['correction']]} p "
            f"({verdict['n_tests']} tests)", "flagged"]


def verdict_rows(verdict: dict[str, Any]) -> list[list[Any]]:
    """One row per test of the verdict: its direction, effect with unit, claim p and adjusted p."""
    return [[t["name"], t["direction"] + (f" ({t['group']})" if t["group"] else ""), t["effect_text"], t["p_value"],
             t["sided"], t["p_adjusted"], "yes" if t["flagged"] else "no"] for t in verdict["details"]]
