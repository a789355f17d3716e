"""`llmlab eval report`: run the standard evaluation on tinyworld and write one HTML page."""

from __future__ import annotations

from typing import Any

import click

from llmlab.cli.common import OutputPath, emit, json_option, model_option, threads_option
from llmlab.cli.eval import device_option


@click.command("report")
@model_option
@click.option("--out", "out_path", type=OutputPath("file"), default="report.html", show_default=True,
              help="The HTML file to write (self-contained: tables and plots embedded).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="The tinyworld dataset folder the model was trained on (default: found next to the checkpoint or from its train_config.json, "
                   "else the probes are rebuilt in memory with seed 0).")
@click.option("--sections", default=",".join(("perplexity", "tasks", "hallucination", "bias", "safety", "scaling")),
              show_default=True, metavar="A,B,...", help="Which sections to run, comma-separated.")
@click.option("--prompt-format", type=click.Choice(["dialogue", "chat", "none"]), default="dialogue",
              show_default=True,
              help="How questions and requests are put to the model in the hallucination and safety sections: "
                   "tinyworld's 'User: ... Assistant:' (pre-trained models) or the chat template (chat-tuned).")
@click.option("--quick", is_flag=True,
              help="Small probe sets (a smoke test in well under a minute), not for reporting.")
@device_option
@threads_option
@json_option
def command(model_dir: str, out_path: str, data_dir: str | None, sections: str, prompt_format: str, quick: bool,
            device: str, threads: int | None, as_json: bool) -> None:
    """Evaluate a model on tinyworld (perplexity, tasks, hallucination, bias, safety, scaling) and
    write one HTML page with every table, plot and the command that reproduces each number."""
    import torch

    from llmlab.eval.report import Settings, build_report

    if threads:
        torch.set_num_threads(threads)
    keys = [k.strip() for k in sections.split(",") if k.strip()]
    settings = Settings.quick(prompt_format) if quick else Settings(prompt_format=prompt_format)
    log = (lambda s: None) if as_json else (lambda s: click.echo(s, err=True))
    result = build_report(model_dir, out_path, data_dir=data_dir, settings=settings, sections=keys, device=device,
                          log=log)

    def show(r: dict[str, Any]) -> None:
        failed = [k for k, v in r["sections"].items() if "error" in v]
        click.echo(f"wrote {r['out']} ({r['bytes'] / 1024:.0f} KiB): {', '.join(r['sections'])}")
        for k in failed:
            click.echo(f"section {k} failed: {r['sections'][k]['error']}", err=True)

    emit(result, as_json, show)
