"""`llmlab eval harness`: llmlab's tasks run through lm-evaluation-harness on an llmlab checkpoint."""

from __future__ import annotations

import os
from typing import Any

import click

from llmlab.cli.common import (
    OutputPath,
    emit,
    json_option,
    load_checkpoint,
    model_option,
    print_table,
    quantize_option,
    threads_option,
)
from llmlab.cli.eval import device_option


@click.command("harness")
@model_option
@click.option("--tasks", "task_names", multiple=True, metavar="NAMES",
              help="Built-in tasks, comma-separated or repeated: tinyworld_reviews, tinyworld_facts_mc, "
                   "tinyworld_facts_gen, tinyworld_arithmetic_1..4, or 'tinyworld' for all. Default: all, "
                   "unless --file is given.")
@click.option("--file", "files", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="A task as JSONL, as `llmlab eval tasks --file` reads it (repeatable).")
@click.option("--num-fewshot", type=int, default=None,
              help="Examples before each query (default: each task's own; tinyworld_reviews uses 4, others 0).")
@click.option("--limit", type=int, default=None, help="Evaluate only the first N documents of each task.")
@click.option("--out", "out_path", type=OutputPath("file", replaced=True), default=None,
              help="Write the results (metrics, stderr, every scored item) as one JSON file.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="The tinyworld dataset folder the tasks are built from (default: found next to the "
                   "checkpoint or from its train_config.json, else rebuilt in memory from --world-seed).")
@click.option("--world-seed", type=int, default=0, show_default=True,
              help="Seed of the tinyworld to rebuild when no --data folder is found.")
@click.option("--seed", type=int, default=1234, show_default=True,
              help="lm-eval's fewshot_random_seed (the same draw as `llmlab eval tasks --seed`).")
@click.option("--tasks-dir", type=OutputPath("dir"), default=None,
              help="Keep the generated lm-eval task folder (YAML + JSONL) here, e.g. to run it with "
                   "`lm_eval --include_path DIR` on an exported model (default: a temporary folder).")
@click.option("--compare", is_flag=True,
              help="Also run llmlab's own task code (`llmlab eval tasks`) and show both, item by item.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Sequences per forward pass.")
@device_option
@quantize_option
@threads_option
@json_option
def command(model_dir: str, task_names: tuple[str, ...], files: tuple[str, ...], num_fewshot: int | None,
            limit: int | None, out_path: str | None, data_dir: str | None, world_seed: int, seed: int,
            tasks_dir: str | None, compare: bool, batch_size: int, device: str, threads: int | None,
            as_json: bool) -> None:
    """Few-shot accuracy (acc, acc_norm) and exact match through lm-evaluation-harness: tinyworld
    tasks written as local lm-eval task YAML files, scored by lm-eval on an llmlab model class."""
    import json
    import tempfile
    from pathlib import Path

    from llmlab.errors import ConfigError
    from llmlab.eval.tasks import load_task_file, resolve_task_names, tinyworld_task
    from llmlab.eval.tinyworld_probes import TinyworldProbes, find_tinyworld_dir

    names = resolve_task_names(task_names, default_all=not files)
    if num_fewshot is not None and num_fewshot < 0:
        raise ConfigError(f"--num-fewshot must be 0 or more, got {num_fewshot}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    for f in files:
        if not Path(f).is_file():
            raise ConfigError(f"task file not found: {f}")
    # Local task files only: never let datasets or the hub client try the network.
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llmlab.eval.harness import (  # one-line error without lm-eval
        compare_with_llmlab,
        run_harness,
    )

    model, tokenizer = load_checkpoint(model_dir, device, threads=threads)
    probes = TinyworldProbes(data_dir or find_tinyworld_dir(model_dir), seed=world_seed) if names else None
    tasks = [tinyworld_task(n, probes) for n in names] + [load_task_file(f) for f in files]
    with tempfile.TemporaryDirectory(prefix="llmlab-harness-") as tmp:
        result = run_harness(model, tokenizer, tasks, tasks_dir or tmp, num_fewshot=num_fewshot, limit=limit,
                             seed=seed, batch_size=batch_size)
    if not tasks_dir:
        result["task_folder"] = None
    out: dict[str, Any] = {"model": model_dir, "probes": probes.source if probes else None, **result}
    if compare:
        from llmlab.eval.tasks import evaluate_task

        own = [(t, evaluate_task(model, tokenizer, t, num_fewshot, limit=limit, seed=seed, batch_size=batch_size))
               for t in tasks]
        out["llmlab"] = compare_with_llmlab(result, own)
    if out_path:
        from llmlab.checkpoint import atomic_write_text

        atomic_write_text(out_path, json.dumps(out, ensure_ascii=False, indent=1) + "\n")
        out["out"] = out_path
    if as_json:  # the samples go to --out; stdout keeps the summary
        out = {**out, "tasks": {k: {f: v for f, v in r.items() if f != "samples"} for k, r in out["tasks"].items()}}

    def show(o: dict[str, Any]) -> None:
        columns = ["task", "metric", "n", "shots", "lm-eval", "stderr"] + (["llmlab", "same items"] if compare else [])
        rows = []
        for name, r in o["tasks"].items():
            for metric, value in r["metrics"].items():
                err = r["stderr"].get(metric)
                row = [name, metric, r["n"], r["shots"], f"{value:.3f}", "-" if err is None else f"{err:.3f}"]
                if compare:
                    c = o["llmlab"][name]
                    row += [f"{c['llmlab'][metric]:.3f}", f"{c['same_items']:.0%}"]
                rows.append(row)
        print_table(rows, columns, title=f"lm-eval {o['lm_eval_version']}: {model_dir}")
        if o.get("out"):
            click.echo(f"results: {o['out']}")

    emit(out, as_json, show)
