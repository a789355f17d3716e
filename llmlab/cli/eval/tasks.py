"""`llmlab eval tasks`: few-shot multiple-choice and generative tasks (built-in tinyworld ones or a JSONL file)."""

from __future__ import annotations

from typing import Any

import click

from llmlab.cli.common import (OutputPath, emit, json_option, load_checkpoint, model_option, print_table, quantize_option,
                               threads_option)
from llmlab.cli.eval import device_option


@click.command("tasks")
@model_option
@click.option("--task", "task_names", multiple=True, metavar="NAME",
              help="Built-in task (repeatable or comma-separated): tinyworld_reviews, tinyworld_facts_mc, "
                   "tinyworld_facts_gen, tinyworld_arithmetic_1..4, or 'tinyworld' for all of them. Default: all, "
                   "unless --file is given.")
@click.option("--file", "files", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="A task as JSONL (repeatable); see docs/evaluation.md for the schema.")
@click.option("--shots", type=int, default=None,
              help="Examples before each query (default: each task's own; tinyworld_reviews uses 4, others 0).")
@click.option("--limit", type=int, default=None, help="Evaluate only the first N documents of each task.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="The tinyworld dataset folder the model was trained on (default: found next to the "
                   "checkpoint or from its train_config.json, else rebuilt in memory from --world-seed).")
@click.option("--world-seed", type=int, default=0, show_default=True,
              help="Seed of the tinyworld to rebuild when no --data folder is found.")
@click.option("--seed", type=int, default=1234, show_default=True, help="Seed for drawing few-shot examples.")
@click.option("--samples-out", type=OutputPath("file"), default=None,
              help="Write every scored document (prompt, choices, log-likelihoods, output) as JSON lines.")
@device_option
@quantize_option
@threads_option
@json_option
def command(model_dir: str, task_names: tuple[str, ...], files: tuple[str, ...], shots: int | None, limit: int | None,
            data_dir: str | None, world_seed: int, seed: int, samples_out: str | None, device: str,
            threads: int | None, as_json: bool) -> None:
    """Accuracy on multiple-choice tasks (acc, and acc_norm: per-character normalised, as
    lm-evaluation-harness) and exact match on generative tasks, few-shot."""
    import json
    from pathlib import Path

    from llmlab.errors import ConfigError
    from llmlab.eval.tasks import TABLE_COLUMNS, resolve_task_names, result_rows, run_tasks
    from llmlab.eval.tinyworld_probes import TinyworldProbes, find_tinyworld_dir

    names = resolve_task_names(task_names, default_all=not files)
    if shots is not None and shots < 0:
        raise ConfigError(f"--shots must be 0 or more, got {shots}")
    for f in files:
        if not Path(f).is_file():
            raise ConfigError(f"task file not found: {f}")
    probes = TinyworldProbes(data_dir or find_tinyworld_dir(model_dir), seed=world_seed) if names else None
    model, tokenizer = load_checkpoint(model_dir, device, threads=threads)
    results = run_tasks(model, tokenizer, names, list(files), shots, limit, probes, seed)
    if samples_out:
        with open(samples_out, "w", encoding="utf-8") as fh:
            for task, r in results:
                for s in r.samples:
                    fh.write(json.dumps({"task": task.name, **s}, ensure_ascii=False) + "\n")
    out = {"model": model_dir, "probes": probes.source if probes else None,
           "tasks": {t.name: r.to_dict() for t, r in results}}

    def show(o: dict[str, Any]) -> None:
        print_table(result_rows(results), TABLE_COLUMNS, title=f"tasks: {model_dir}")

    emit(out, as_json, show)
