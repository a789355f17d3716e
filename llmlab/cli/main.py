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


def _print_error(message: str) -> None:
    """An error on its own line: a progress bar the failed work left on screen is closed first."""
    from llmlab.progress import close_open_bars

    close_open_bars()
    click.echo(message, err=True)


def _print_interrupted(exc: BaseException | None, argv: list[str] | None) -> None:
    """One line: "interrupted", or what a stopped training run kept and how to continue it."""
    from llmlab.errors import Interrupted
    from llmlab.progress import close_open_bars

    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun the first process speaks for all
    close_open_bars()  # on a fresh line, not after a bar the interrupted work left on screen
    if not isinstance(exc, Interrupted):
        click.echo("interrupted", err=True)
        return
    message = str(exc)
    if exc.checkpoint is not None:
        message += f". {_how_to_continue(sys.argv[1:] if argv is None else argv)}"
    click.echo(message, err=True)


def _how_to_continue(args: list[str]) -> str:
    """Commands with --resume continue with it; the others (quickstart, recipes) by running again."""
    names, command = [], cli
    for arg in args:
        sub = command.commands.get(arg) if isinstance(command, click.Group) else None
        if sub is None:
            break
        names.append(arg)
        command = sub
    line = " ".join(["llmlab", *names])
    if any(p.name == "resume" for p in command.params) and "--resume" not in args:
        return f"Continue with the same `{line}` command plus --resume."
    return f"Continue by running the same `{line}` command again."


def main(argv: list[str] | None = None) -> int:
    debug = bool(os.environ.get("LLMLAB_DEBUG"))
    try:
        cli.main(args=argv, prog_name="llmlab", standalone_mode=False)
    except click.exceptions.Abort as exc:  # click turns a KeyboardInterrupt into Abort
        _print_interrupted(exc.__cause__ or exc.__context__, argv)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt as exc:
        _print_interrupted(exc, argv)
        return 130
    except LLMLabError as exc:
        if debug:
            raise
        _print_error(f"error: {exc}")
        return 1
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        if debug:
            raise
        _print_error(f"error: {exc}")
        return 1
    except Exception as exc:  # an unexpected bug: still one line, with a pointer to the traceback
        if debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        _print_error(f"error: {type(exc).__name__}: {first} (set LLMLAB_DEBUG=1 for the traceback)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
