"""`llmlab eval hallucination`: hallucination detectors measured on tinyworld's claims and questions."""

from __future__ import annotations

from typing import Any

import click

from llmlab.cli.common import emit, json_option, model_option, print_table
from llmlab.eval._cli import device_option, load_model, threads_option

DETECTORS = {
    "kb": "compare with the KB fact (upper bound; decides only claims a fact matches)",
    "yes_no": "model's P(No) vs P(Yes) after the verification prompt, no KB",
    "likelihood": "surprise at the claimed value; flagged when not the greedy continuation",
    "self_consistency": "sampled continuations disagree with the claimed value",
}


def detector_rows(report: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, about in DETECTORS.items():
        m = report["claims"].get(name)
        if m:
            label = name + (f" (covers {m['coverage']:.0%})" if "coverage" in m else "")
            rows.append(["claims: false vs true", label, m["n"], m["precision"], m["recall"], m["auroc"]])
    m = report["questions"]["self_consistency"]
    rows.append(["questions: unknown vs real people", "self_consistency", m["n"], m["precision"], m["recall"],
                 m["auroc"]])
    return rows


ROW_COLUMNS = ["probe set (positive first)", "detector", "n", "precision", "recall", "AUROC"]


@click.command("hallucination")
@model_option
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="The tinyworld dataset folder (kb.jsonl, probes/); default: found next to the checkpoint or from its train_config.json, "
                   "else rebuilt in memory from --world-seed.")
@click.option("--world-seed", type=int, default=0, show_default=True,
              help="Seed of the tinyworld to rebuild when no --data folder is found.")
@click.option("--claims", "n_claims", type=int, default=200, show_default=True,
              help="True/false claims to score (half are false).")
@click.option("--questions", "n_questions", type=int, default=100, show_default=True,
              help="Questions about people who do not exist (and as many about real people).")
@click.option("--samples", type=int, default=5, show_default=True, help="Samples per prompt for self-consistency.")
@click.option("--temperature", type=float, default=1.0, show_default=True,
              help="Sampling temperature for self-consistency.")
@click.option("--prompt-format", type=click.Choice(["dialogue", "chat", "none"]), default="dialogue", show_default=True,
              help="How questions are put to the model: tinyworld's 'User: ... Assistant:' (pre-trained models), "
                   "the tokenizer's chat template (chat-tuned models), or the bare question.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write ROC curves of every detector to this PNG.")
@device_option
@threads_option
@json_option
def command(model_dir: str, data_dir: str | None, world_seed: int, n_claims: int, n_questions: int, samples: int,
            temperature: float, prompt_format: str, seed: int, plot_path: str | None, device: str,
            threads: int | None, as_json: bool) -> None:
    """Precision, recall and AUROC of hallucination detectors on tinyworld: true vs false claims,
    and questions about people who do not exist vs the same questions about real people."""
    from llmlab.errors import ConfigError
    from llmlab.eval.hallucination import evaluate_hallucination, plot_roc
    from llmlab.eval.tinyworld_probes import TinyworldProbes, find_tinyworld_dir

    if n_claims < 2 or n_questions < 1:
        raise ConfigError("--claims must be at least 2 and --questions at least 1")
    probes = TinyworldProbes(data_dir or find_tinyworld_dir(model_dir), seed=world_seed)
    model, tokenizer = load_model(model_dir, device, threads)
    report = evaluate_hallucination(model, tokenizer, probes, n_claims=n_claims, n_questions=n_questions,
                                    samples=samples, seed=seed, prompt_format=prompt_format, temperature=temperature)
    if plot_path:
        report["plot"] = str(plot_roc(report, plot_path))
    out = {"model": model_dir, **{k: v for k, v in report.items() if k != "scores"}}

    def show(r: dict[str, Any]) -> None:
        print_table(detector_rows(report), ROW_COLUMNS, title=f"hallucination detectors: {model_dir}")
        q = r["questions"]
        click.echo(f"questions about people who do not exist answered without abstaining (fabrication rate): "
                   f"{q['fabrication_rate']:.3f}; abstentions on real people: {q['abstention_rate_known']:.3f}")
        click.echo(f"probes: {r['probes']}" + (f"; ROC curves: {r['plot']}" if "plot" in r else ""))

    emit(out, as_json, show)
