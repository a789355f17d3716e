"""`llmlab eval ...`: evaluation and responsible-AI tools.

Each subcommand is a module of `llmlab/cli/eval/` (attribute `command`), imported only when used,
so `llmlab eval --help` stays instant.
"""

from __future__ import annotations

from typing import Any

import click

from llmlab.cli.common import LazyGroup, command_modules

SUBCOMMANDS = command_modules("llmlab.cli.eval")


@click.group("eval", cls=LazyGroup, lazy_subcommands=SUBCOMMANDS)
def command(**_: Any) -> None:
    """Evaluate models and text: perplexity, BLEU/chrF/ROUGE-L, task accuracy, hallucination,
    bias and safety; `report` writes one HTML page with all of them."""
