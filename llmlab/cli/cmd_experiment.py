"""`llmlab experiment ...`: the lesson's practice exercises as runnable experiments."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from llmlab.cli.common import (OutputPath, device_option, emit_json, json_option, load_checkpoint, model_option,
                               print_table, quantize_option)
from llmlab.recipes.alignment import STAGES, AlignmentConfig  # light: the recipe imports torch only when it runs


@click.group("experiment")
def command() -> None:
    """Run the lesson's practice exercises as measured experiments."""


@command.command("prompting")
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
def prompting(model_dir, task, data_dir, classification_train, classification_test, arithmetic_files, shots,
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


def _ints(text: str, flag: str) -> list[int]:
    from llmlab.errors import ConfigError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated integers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"{flag} takes non-negative integers, got {text!r}")
    return values


class _Numbers(click.ParamType):
    """Comma-separated numbers, as a tuple: --frontier-kl 0.2,0.05."""

    name = "x,y,..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return tuple(float(x) for x in str(value).split(",") if x.strip())
        except ValueError:
            self.fail(f"takes comma-separated numbers, got {value!r}", param, ctx)


class _IntOrNone(click.ParamType):
    """A whole number, or `none` (no limit): --sft-max-steps none."""

    name = "integer|none"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        if str(value).lower() == "none":
            return None
        try:
            return int(value)
        except ValueError:
            self.fail(f"takes a whole number or none, got {value!r}", param, ctx)


def _alignment_options(func):
    """One flag per AlignmentConfig field not given its own option (--sft-epochs 1, --dpo-lr 2e-5, ...)."""
    import dataclasses

    own = {"base", "tinyworld", "out", "stages", "threads", "seed"}
    for f in reversed(dataclasses.fields(AlignmentConfig)):
        if f.name in own:
            continue
        kind = str(f.type)  # a string: the recipe module uses `from __future__ import annotations`
        shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        func = click.option("--" + f.name.replace("_", "-"), f.name, default=f.default,
                            type=_Numbers() if kind.startswith("tuple") else _IntOrNone() if kind.startswith("int")
                            else float, help=f"{f.name.replace('_', ' ')} (default: {shown})")(func)
    return func


@command.command("alignment")
@click.option("--base", default=AlignmentConfig.base, show_default=True,
              help="The pre-trained tinyworld checkpoint to fine-tune and align.")
@click.option("--tinyworld", default=AlignmentConfig.tinyworld, show_default=True,
              help="The tinyworld folder it was trained on.")
@click.option("--out", default=AlignmentConfig.out, show_default=True,
              help="Folder for the runs and alignment_report.json (a stage whose output exists is not re-run).")
@click.option("--stages", default=",".join(STAGES), show_default=True,
              help="Comma-separated subset of the stages, run in this order.")
@click.option("--threads", type=int, default=None, help="CPU threads for PyTorch.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every stage.")
@_alignment_options
@json_option
def alignment(base, tinyworld, out, stages, threads, seed, as_json, **options):
    """Measure the lesson's fine-tuning and alignment claims on tinyworld: SFT, reward model, PPO,
    the DPO-vs-PPO frontier and safety (docs/alignment.md); `python -m llmlab.recipes.alignment`
    is the same command.

    \b
    Example:
      llmlab experiment alignment --base runs/quickstart/run/checkpoint \\
          --tinyworld runs/quickstart/tinyworld --out runs/alignment --stages sft,reward
    """
    import json

    from llmlab.recipes.alignment import Recipe

    cfg = AlignmentConfig(base=base, tinyworld=tinyworld, out=out, threads=threads, seed=seed,
                          stages=tuple(s.strip() for s in stages.split(",") if s.strip()), **options)
    log = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    report = Recipe(cfg, log=log).run()
    if as_json:
        emit_json(report)
    else:  # the start of the report; all of it is in OUT/alignment_report.json
        click.echo(json.dumps({k: v for k, v in report.items() if k != "commands"}, indent=1, default=str)[:4000])
