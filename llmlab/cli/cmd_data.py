"""`llmlab data ...`: each subcommand is a module of `llmlab/cli/data/` (attribute `command`)."""

import click

from llmlab.cli.common import LazyGroup, command_modules


@click.group("data", cls=LazyGroup, lazy_subcommands=command_modules("llmlab.cli.data"))
def command() -> None:
    """Make datasets: generate tinyworld, tokenise text into training shards."""
