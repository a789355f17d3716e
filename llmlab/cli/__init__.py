"""Command-line interface. `main` is the `llmlab` console script."""

import sys


def main() -> None:
    from llmlab.cli.main import main as _main

    sys.exit(_main())
