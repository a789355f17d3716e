"""`llmlab experiment ...`: the lesson's practice exercises as runnable experiments.

Each subcommand is a module of `llmlab/cli/experiment/` (attribute `command`), imported only when used.
"""

import click

from llmlab.cli.common import LazyGroup, command_modules


@click.group("experiment", cls=LazyGroup, lazy_subcommands=command_modules("llmlab.cli.experiment"))
def command() -> None:
    """Run the lesson's practice exercises as measured experiments."""
