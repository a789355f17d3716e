"""`llmlab eval ...`: evaluation and responsible-AI tools.

Each subcommand lives in `llmlab/eval/<name>_cli.py` (attribute `command`) and is imported only
when used, so `llmlab eval --help` stays instant.
"""

from __future__ import annotations

from typing import Any

import click

from llmlab.cli.common import LazyGroup

SUBCOMMANDS = {
    "perplexity": "llmlab.eval.perplexity_cli:command",
    "bleu": "llmlab.eval.bleu_cli:command",
    "tasks": "llmlab.eval.tasks_cli:command",
    "hallucination": "llmlab.eval.hallucination_cli:command",
    "bias": "llmlab.eval.bias_cli:command",
    "safety": "llmlab.eval.safety_cli:command",
    "report": "llmlab.eval.report_cli:command",
}


@click.group("eval", cls=LazyGroup, lazy_subcommands=SUBCOMMANDS)
def command(**_: Any) -> None:
    """Evaluate models and text: perplexity, BLEU/chrF/ROUGE-L, task accuracy, hallucination,
    bias and safety; `report` writes one HTML page with all of them."""
