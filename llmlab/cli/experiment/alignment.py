"""`llmlab experiment alignment`: the fine-tuning and alignment claims measured on tinyworld."""

from __future__ import annotations

import click

from llmlab.cli.common import emit_json, json_option
from llmlab.recipes.alignment import STAGES, AlignmentConfig  # light: the recipe imports torch only when it runs

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


@click.command("alignment")
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
def command(base, tinyworld, out, stages, threads, seed, as_json, **options):
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
