import click

from llmlab.cli.common import LazyGroup


@click.group(
    "data",
    cls=LazyGroup,
    lazy_subcommands={
        "tinyworld": "llmlab.data.tinyworld.cli:tinyworld",
        "prepare": "llmlab.cli.data_prepare:prepare_command",
    },
)
def command() -> None:
    """Make datasets: generate tinyworld, tokenise text into training shards."""
