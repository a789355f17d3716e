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


def _machine_is_busy() -> bool:
    """Another process is using a core right now, or we are one of several test workers.

    Linux's /proc/loadavg counts the runnable tasks at this instant (ourselves included); the load
    average would lag by a minute, and still be high just after `pip install` on a fresh machine."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return True
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0]) > 1
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.getloadavg()[0] >= 0.5
    except OSError:  # no load average on this platform
        return False


# OpenMP threads that spin while waiting make PyTorch many times slower when another process keeps
# a core busy (measured here with the tiny model and one core busy: 5,840 tokens/s sleeping vs 3,160
# spinning; README, Performance), but on idle cores spinning is ~12% faster (12,100-12,400 vs 11,000). So threads sleep only when the machine is busy when the command starts. Must be set before torch is first imported; an explicit setting wins.
if "OMP_WAIT_POLICY" not in os.environ and _machine_is_busy():
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

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
