"""`llmlab <command>`: the command-line entry point.

Every module `llmlab/cli/cmd_*.py` exposes a click command or group named `command`; they are
discovered here, so adding a command never touches this file. Heavy imports (torch) happen
inside command bodies to keep `llmlab --help` instant.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

# OpenMP threads that spin while waiting make PyTorch up to 30x slower on a machine where another
# process keeps a core busy (measured here: 468 vs 7,490 tokens/s); sleeping instead costs within
# noise to ~8% on an idle machine (bench/model_throughput.py: 2,400-2,620 tokens/s either way).
# Must be set before torch is first imported; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click  # noqa: E402

from llmlab.cli.common import one_line_warnings  # noqa: E402
from llmlab.errors import LLMLabError  # noqa: E402

CONTEXT_SETTINGS = dict(help_option_names=["-h", "--help"], max_content_width=100)


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="llmlab")
def cli() -> None:
    """llmlab: build, train, align, evaluate and serve large language models.

    Start with `llmlab quickstart`. Every command takes --help. Set LLMLAB_DEBUG=1 to see full
    tracebacks instead of one-line errors.
    """
    one_line_warnings()


def _register_commands() -> None:
    import llmlab.cli as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"llmlab.cli.{info.name}")
            cli.add_command(module.command)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    debug = bool(os.environ.get("LLMLAB_DEBUG"))
    try:
        cli.main(args=argv, prog_name="llmlab", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except LLMLabError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        return 1
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        return 1
    except Exception as exc:  # an unexpected bug: still one line, with a pointer to the traceback
        if debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        click.echo(f"error: {type(exc).__name__}: {first} (set LLMLAB_DEBUG=1 for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
