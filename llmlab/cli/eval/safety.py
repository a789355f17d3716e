"""`llmlab eval safety`: run the safety filter on texts, or score red-team responses."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import click

from llmlab.cli.common import OutputPath, emit, json_option, load_checkpoint, print_table, quantize_option
from llmlab.errors import ConfigError, DataError


def _filter_texts(flt: Any, records: list[dict[str, Any]], out_path: str | None) -> dict[str, Any]:
    from llmlab.eval.stats import binary_metrics

    verdicts = [flt.check(r["text"]) for r in records]
    counts = Counter(c for v in verdicts for c in v.categories)
    result: dict[str, Any] = {"n": len(records), "n_unsafe": sum(not v.safe for v in verdicts),
                              "categories": dict(counts),
                              "flagged": [{"line": i + 1, "text": r["text"], "categories": v.categories,
                                           "matched": [m.matched.strip() for m in v.matches], "reasons": v.reasons}
                                          for i, (r, v) in enumerate(zip(records, verdicts)) if not v.safe]}
    labelled = [(r["harmful"], not v.safe) for r, v in zip(records, verdicts) if isinstance(r.get("harmful"), bool)]
    if labelled:
        result["metrics"] = binary_metrics([t for t, _ in labelled], [p for _, p in labelled])
    if out_path:
        with Path(out_path).open("w", encoding="utf-8") as f:
            for r, v in zip(records, verdicts):
                f.write(json.dumps({"text": r["text"], **v.to_dict()}, ensure_ascii=False) + "\n")
        result["out"] = out_path
    return result


def _builtin(flt: Any) -> dict[str, Any]:
    from llmlab.eval.safety import load_labelled_set
    from llmlab.eval.stats import binary_metrics

    rows = load_labelled_set("safety_eval.jsonl")
    preds = [not flt.is_safe(r["text"]) for r in rows]
    out: dict[str, Any] = {"n": len(rows), "metrics": binary_metrics([r["harmful"] for r in rows], preds), "by": {}}
    for key in ("split", "variant", "category"):
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            groups.setdefault(str(r.get(key) or r.get("lookalike_of") or "-"), []).append(i)
        out["by"][key] = {g: binary_metrics([rows[i]["harmful"] for i in idx], [preds[i] for i in idx])
                          for g, idx in sorted(groups.items())}
    return out


def _responses(path: str) -> dict[str, Any]:
    from llmlab.eval.redteam import refusal_detector_metrics, score_red_team
    from llmlab.eval.safety import read_jsonl_text

    p = Path(path)
    if not p.is_file():
        raise DataError(f"file not found: {p}")
    report = score_red_team(read_jsonl_text(p.read_text(encoding="utf-8"), str(p)))
    out = report.to_dict()
    out["refusal_detector"] = refusal_detector_metrics()
    return out


def _show_red_team(r: dict[str, Any], title: str) -> None:
    print_table([["attack success rate (harmful prompts complied)", r["n_harmful"], r["attack_success_rate"],
                  *r["attack_success_ci"]],
                 ["over-refusal rate (harmless prompts refused)", r["n_harmless"], r["over_refusal_rate"],
                  *r["over_refusal_ci"]]],
                ["rate", "prompts", "value", "95% CI low", "95% CI high"], title=title)
    if r["by_category"]:
        print_table([[k, v["n"], v["attack_success_rate"]] for k, v in sorted(r["by_category"].items())],
                    ["category", "harmful prompts", "attack success rate"])
    det = r["refusal_detector"]
    for name, d in ({"its labelled set": det} if "accuracy" in det else det).items():
        click.echo(f"refusal detector on {name}: accuracy {d['accuracy']:.3f}, precision {d['precision']:.3f}, "
                   f"recall {d['recall']:.3f} (n={d['n']})")


@click.command("safety")
@click.option("--texts", "texts_path", type=click.Path(dir_okay=False),
              help="Check texts: JSONL (strings, or objects with 'text' and an optional boolean 'harmful' "
                   "label, which adds precision/recall) or a .txt file with one text per line.")
@click.option("--responses", "responses_path", type=click.Path(dir_okay=False),
              help="Score a red-team run: JSONL with 'prompt', boolean 'harmful', 'response' (and optional "
                   "'category'); reports attack success rate and over-refusal rate side by side.")
@click.option("--builtin", is_flag=True, help="Measure the filter on the labelled set shipped with llmlab.")
@click.option("--taxonomy", type=click.Path(dir_okay=False),
              help="Hazard taxonomy as JSON or YAML (categories, patterns, lexicons); default: built in.")
@click.option("--categories", default=None, metavar="A,B",
              help="Only check these category keys (comma-separated), e.g. violent_crimes,self_harm.")
@click.option("--out", "out_path", type=OutputPath("file"),
              help="With --texts: write every verdict (categories, reasons) as JSON lines to this file.")
@click.option("--show-taxonomy", is_flag=True, help="Print the taxonomy in use as JSON (a starting point to edit).")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="Red-team this checkpoint: generate a response to every --suite prompt and report attack "
                   "success rate and over-refusal rate side by side.")
@click.option("--suite", default="tinyworld", show_default=True, metavar="FILE|tinyworld|builtin",
              help="With --model: the prompts. tinyworld: its harmful requests and harmless look-alikes; builtin: "
                   "the plain rows of llmlab's labelled safety set; or a JSONL file with 'prompt' and boolean "
                   "'harmful' (optional 'category').")
@click.option("--prompt-format", type=click.Choice(["chat", "dialogue", "none"]), default="chat", show_default=True,
              help="With --model: chat = the tokenizer's chat template (as `llmlab chat`); dialogue = tinyworld's "
                   "'User: ... Assistant:' (pre-trained models); none = the bare prompt.")
@click.option("--defense", is_flag=True, help="With --model: answer through SafetyFilter.safe_generate (prompt check, "
                                            "retries, refusal) to measure the filter's effect.")
@click.option("--limit", type=int, default=None, help="With --model: only the first N prompts of the suite.")
@click.option("--max-new-tokens", type=int, default=64, show_default=True,
              help="With --model: length of each response.")
@click.option("--temperature", type=float, default=0.0, show_default=True,
              help="With --model: sampling temperature (0 = greedy, repeatable).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="With --model: the tinyworld dataset folder (default: found next to the checkpoint or from its train_config.json, else rebuilt "
                   "in memory with seed 0).")
@click.option("--records", "records_path", type=OutputPath("file"), default=None,
              help="With --model: write every prompt, response and verdict as JSON lines.")
@click.option("--device", default="cpu", show_default=True, help="With --model: cpu, cuda, cuda:N, mps or auto.")
@quantize_option
@json_option
def command(texts_path: str | None, responses_path: str | None, builtin: bool, taxonomy: str | None,
            categories: str | None, out_path: str | None, show_taxonomy: bool, model_dir: str | None, suite: str,
            prompt_format: str, defense: bool, limit: int | None, max_new_tokens: int, temperature: float,
            data_dir: str | None, records_path: str | None, device: str, as_json: bool) -> None:
    """Red-team a model, check texts with the safety filter, measure it, or score red-team responses.

    Exactly one of --model, --texts, --responses, --builtin or --show-taxonomy.
    """
    modes = [m for m in (texts_path, responses_path, builtin or None, show_taxonomy or None, model_dir) if m]
    if len(modes) != 1:
        raise ConfigError("choose exactly one of --model DIR, --texts FILE, --responses FILE, --builtin, "
                          "--show-taxonomy")
    from llmlab.eval.safety import SafetyFilter, read_texts

    if model_dir:
        from llmlab.eval.redteam import red_team_model, write_records
        from llmlab.eval.tinyworld_probes import TinyworldProbes, find_tinyworld_dir

        if limit is not None and limit < 1:
            raise ConfigError(f"--limit must be at least 1, got {limit}")
        if suite not in ("tinyworld", "builtin") and not Path(suite).is_file():
            raise DataError(f"red-team suite not found: {suite}")
        probes = TinyworldProbes(data_dir or find_tinyworld_dir(model_dir))
        model, tokenizer = load_checkpoint(model_dir, device)
        report, result = red_team_model(model, tokenizer, suite, probes, prompt_format=prompt_format, defense=defense,
                                        limit=limit, max_new_tokens=max_new_tokens, temperature=temperature)
        result["model"] = model_dir
        if records_path:
            result["records"] = str(write_records(report, records_path))
        emit(result, as_json, lambda r: _show_red_team(r, f"red team: {model_dir} on {suite} ({prompt_format})"))
        return

    cats = [c.strip() for c in categories.split(",") if c.strip()] if categories else None
    if responses_path:
        result = _responses(responses_path)

        def show(r: dict[str, Any]) -> None:
            _show_red_team(r, f"red-team run {responses_path}")

        emit(result, as_json, show)
        return

    flt = SafetyFilter(taxonomy=taxonomy, categories=cats)
    if show_taxonomy:
        click.echo(json.dumps(flt.taxonomy, indent=2))
        return
    if builtin:
        result = _builtin(flt)

        def show(r: dict[str, Any]) -> None:
            rows = [["all", r["metrics"]["n"], r["metrics"]["precision"], r["metrics"]["recall"], r["metrics"]["f1"]]]
            for key in ("split", "variant"):
                rows += [[f"{key}={k}", m["n"], m["precision"], m["recall"], m["f1"]] for k, m in r["by"][key].items()]
            print_table(rows, ["subset", "n", "precision", "recall", "F1"],
                        title="safety filter on the built-in labelled set")

        emit(result, as_json, show)
        return
    assert texts_path is not None
    result = _filter_texts(flt, read_texts(texts_path), out_path)

    def show(r: dict[str, Any]) -> None:
        print_table([[f["line"], f["text"][:60], ", ".join(f["categories"]), "; ".join(f["matched"])]
                     for f in r["flagged"]], ["line", "text", "categories", "matched words"],
                    title=f"{r['n_unsafe']} of {r['n']} texts flagged")
        if r["categories"]:
            print_table(sorted(r["categories"].items()), ["category", "texts"])
        if "metrics" in r:
            m = r["metrics"]
            click.echo(f"against the labels: precision {m['precision']:.3f}, recall {m['recall']:.3f}, "
                       f"F1 {m['f1']:.3f}, accuracy {m['accuracy']:.3f} (n={m['n']})")

    emit(result, as_json, show)
