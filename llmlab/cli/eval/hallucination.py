"""`llmlab eval hallucination`: hallucination detectors measured on tinyworld's claims and questions."""

from __future__ import annotations

from typing import Any

import click

from llmlab.cli.common import (OutputPath, emit, json_option, load_checkpoint, model_option, print_table, quantize_option,
                               threads_option)
from llmlab.cli.eval import device_option


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
@click.option("--plot", "plot_path", type=OutputPath("file"), default=None,
              help="Write ROC curves of every detector to this PNG.")
@device_option
@quantize_option
@threads_option
@json_option
def command(model_dir: str, data_dir: str | None, world_seed: int, n_claims: int, n_questions: int, samples: int,
            temperature: float, prompt_format: str, seed: int, plot_path: str | None, device: str,
            threads: int | None, as_json: bool) -> None:
    """Precision, recall and AUROC of hallucination detectors on tinyworld: true vs false claims,
    and questions about people who do not exist vs the same questions about real people."""
    from llmlab.errors import ConfigError
    from llmlab.eval.hallucination import ROW_COLUMNS, detector_rows, evaluate_hallucination, plot_roc
    from llmlab.eval.tinyworld_probes import TinyworldProbes, find_tinyworld_dir

    if n_claims < 2 or n_questions < 1:
        raise ConfigError("--claims must be at least 2 and --questions at least 1")
    probes = TinyworldProbes(data_dir or find_tinyworld_dir(model_dir), seed=world_seed)
    model, tokenizer = load_checkpoint(model_dir, device, threads=threads)
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
