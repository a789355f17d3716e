"""`llmlab experiment prompting`: zero-shot, few-shot and chain-of-thought prompting compared."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from llmlab.cli.common import (OutputPath, device_option, emit_json, json_option, load_checkpoint, model_option,
                               print_table, quantize_option)
from llmlab.cli.experiment import parse_ints as _ints

@click.command("prompting")
@model_option
@click.option("--task", type=click.Choice(["classification", "arithmetic", "all"]), default="all", show_default=True,
              help="Which exercise: few-shot review classification, chain-of-thought arithmetic, or both.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="A tinyworld folder (or its probes/ folder): probes/classification/{train,test}.jsonl, "
                   "probes/arithmetic/*.jsonl.")
@click.option("--classification-train", type=click.Path(dir_okay=False), default=None,
              help="JSONL with text and label: where few-shot examples come from.")
@click.option("--classification-test", type=click.Path(dir_okay=False), default=None,
              help="JSONL with text and label: what is classified.")
@click.option("--arithmetic", "arithmetic_files", type=click.Path(dir_okay=False), multiple=True,
              help="JSONL with question, solution and answer (repeatable; one table column per file).")
@click.option("--shots", default="0,1,2,4,8", show_default=True, help="Numbers of examples in the prompt.")
@click.option("--cot-shots", default="0,2", show_default=True, help="Worked solutions before a chain-of-thought prompt.")
@click.option("--self-consistency", type=int, default=1, show_default=True,
              help="Chains sampled per arithmetic problem for chain-of-thought (majority vote).")
@click.option("--limit", type=int, default=100, show_default=True, help="Test items per set.")
@click.option("--seed", type=int, default=0, show_default=True, help="Chooses the examples (and sampling).")
@click.option("--out", type=OutputPath("dir"), default="runs/experiment-prompting", show_default=True,
              help="Where results.json, table.md and prompting.png go.")
@device_option
@quantize_option
@json_option
def command(model_dir, task, data_dir, classification_train, classification_test, arithmetic_files, shots,
              cot_shots, self_consistency, limit, seed, out, device, as_json):
    """Compare zero-shot, few-shot (k examples) and chain-of-thought prompting.

    \b
    Example:
      llmlab data tinyworld --out data/tw
      llmlab experiment prompting --model runs/quickstart/run/checkpoint --data data/tw

    Writes a table (table.md, and on screen) and a plot (prompting.png) to --out. With --json,
    prints one JSON object: {"rows": [...], "files": {...}}.
    """
    import torch

    from llmlab.errors import ConfigError, DataError
    from llmlab.infer import prompt_experiment as exp

    shot_list = _ints(shots, "--shots")
    cot_list = _ints(cot_shots, "--cot-shots")
    if limit < 1 or self_consistency < 1:
        raise ConfigError("--limit and --self-consistency must be >= 1")
    data = exp.load_data(data_dir, classification_train, classification_test, arithmetic_files)
    if not data.has_classification and not data.arithmetic:
        data = exp.load_data(exp.make_tinyworld_probes(Path(".llmlab-cache"), seed))
    want_cls = task in ("classification", "all")
    want_ari = task in ("arithmetic", "all")
    if task == "classification" and not data.has_classification:
        raise DataError("no classification data: pass --data DIR or --classification-train/--classification-test")
    if task == "arithmetic" and not data.arithmetic:
        raise DataError("no arithmetic data: pass --data DIR or --arithmetic FILE")

    model, tokenizer = load_checkpoint(model_dir, device)
    log = (lambda m: print(m, file=sys.stderr)) if as_json else (lambda m: click.secho(m, dim=True))
    torch.manual_seed(seed)
    rows = []
    if want_cls and data.has_classification:
        rows += exp.run_classification(model, tokenizer, data, shot_list, limit=limit, seed=seed, log=log)
    if want_ari and data.arithmetic:
        rows += exp.run_arithmetic(model, tokenizer, data, shot_list, limit=limit, seed=seed, cot_shots=cot_list,
                                   self_consistency=self_consistency, log=log)
    files = exp.write_report(rows, Path(out), f"prompting strategies: {Path(model_dir)}")
    if as_json:
        emit_json({"rows": rows, "files": files})
        return
    cls = [r for r in rows if r["task"] == "classification"]
    if cls:
        print_table([(r["method"], f"{r['k']} ({r['k_fit']})", r["accuracy"],
                      "" if r["calibrated_accuracy"] is None else r["calibrated_accuracy"]) for r in cls],
                    ["method", "k (fit)", "accuracy", "calibrated"], title="review classification")
    ari = [r for r in rows if r["task"] == "arithmetic"]
    if ari:
        print_table([(r["set"], r["method"], f"{r['k']} ({r['k_fit']})", r["accuracy"]) for r in ari],
                    ["set", "method", "k (fit)", "accuracy"], title="arithmetic")
    click.echo(f"wrote {files['table']} and {files['plot']}")
