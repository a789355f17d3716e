"""`llmlab eval ...`: evaluation and responsible-AI tools.

Each subcommand lives in `llmlab/eval/<name>_cli.py` (attribute `command`) and is imported only
when used. A subcommand whose module is not there yet (model-dependent tools still being built)
shows up as "not available yet" instead of breaking `llmlab eval --help`.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from llmlab.cli.common import LazyGroup
from llmlab.errors import LLMLabError

SUBCOMMANDS = {
    "perplexity": "llmlab.eval.perplexity_cli:command",
    "bleu": "llmlab.eval.bleu_cli:command",
    "tasks": "llmlab.eval.tasks_cli:command",
    "hallucination": "llmlab.eval.hallucination_cli:command",
    "bias": "llmlab.eval.bias_cli:command",
    "safety": "llmlab.eval.safety_cli:command",
    "report": "llmlab.eval.report_cli:command",
}


def _placeholder(name: str, module: str) -> click.Command:
    def run(args: tuple[str, ...]) -> None:
        raise LLMLabError(f"`llmlab eval {name}` is not available yet ({module} is not installed)")

    return click.Command(
        name, callback=run, help=f"(not available yet: needs {module})", short_help="(not available yet)",
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


class EvalGroup(LazyGroup):
    """LazyGroup that tolerates subcommand modules that do not exist yet."""

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_subcommands:
            module_name, attr = self.lazy_subcommands[name].split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:  # the module exists but imports something missing: a bug
                    raise
                return _placeholder(name, module_name)
            return getattr(module, attr)
        return super().get_command(ctx, name)


@click.group("eval", cls=EvalGroup, lazy_subcommands=SUBCOMMANDS)
def command(**_: Any) -> None:
    """Evaluate models and text: perplexity, BLEU/chrF/ROUGE-L, task accuracy, hallucination,
    bias and safety; `report` writes one HTML page with all of them."""
