"""Shared pieces of the CLI: --json output, tables, and common options."""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterable, Sequence

import click

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object with the result instead of a table."
)
model_option = click.option(
    "--model", "model_dir", required=True, type=click.Path(file_okay=False),
    help="Checkpoint directory (config.json, model.safetensors, tokenizer.json, ...).",
)
device_option = click.option(
    "--device", default="auto", show_default=True, help="cpu, cuda, cuda:N, mps, or auto (cuda if available)."
)
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def emit_json(result: dict[str, Any]) -> None:
    """Print exactly one JSON object on stdout (what scripts parse)."""
    click.echo(json.dumps(_jsonable(result)))


def print_table(
    rows: Iterable[Sequence[Any]], columns: Sequence[str], title: str | None = None, *, err: bool = False
) -> None:
    """A readable table (rich) on stdout, or stderr when stdout carries JSON."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for i, name in enumerate(columns):
        # fold, never "…": a cut cell can hide what tells rows apart (tinyworld_arithmetic_1..4)
        table.add_column(name, justify="left" if i == 0 else "right", overflow="fold")
    for row in rows:
        table.add_row(*(format_cell(c) for c in row))
    console = Console(stderr=err)
    if not console.is_terminal:  # a pipe or a file has no width to respect: print the table whole
        from rich.measure import Measurement

        needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
        console = Console(stderr=err, width=max(console.width, needed))
    console.print(table)


def format_cell(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4f}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def emit(result: dict[str, Any], as_json: bool, show: Callable[[dict[str, Any]], None]) -> None:
    """Print `result` as JSON, or through `show` (a table, a summary) for people."""
    if as_json:
        emit_json(result)
    else:
        show(result)


def one_line_warnings() -> None:
    """Show warnings (a prompt cut to fit the context, ...) as `warning: MESSAGE` on stderr: a user
    of the command needs the message, not the library's file and line."""
    import warnings

    warnings.formatwarning = lambda message, *_, **__: f"warning: {message}\n"


class LazyGroup(click.Group):
    """A group whose subcommands live in other modules and are imported only when used.

    lazy_subcommands maps a name to "module.path:attribute".
    """

    def __init__(self, *args: Any, lazy_subcommands: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = lazy_subcommands or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_subcommands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_subcommands:
            import importlib

            module_name, attr = self.lazy_subcommands[name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)


class TokenCount(click.ParamType):
    """A positive count written as 5000000, 200k, 2.5M or 1e6."""

    name = "count"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        from llmlab.data.tinyworld.tokens import parse_token_count
        from llmlab.errors import ConfigError

        try:
            return parse_token_count(str(value))
        except ConfigError as e:
            self.fail(str(e), param, ctx)


def options_from_dataclass(cls, exclude: Sequence[str] = ()) -> Callable:
    """Decorate a click command with one --flag per dataclass field (help from field metadata).

    Every option defaults to None so the command can tell which flags the user actually gave
    (they override a --config file or a resumed run's saved settings).
    """
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)

    def decorate(func: Callable) -> Callable:
        for f in reversed(dataclasses.fields(cls)):
            if f.name in exclude:
                continue
            flag = "--" + f.name.replace("_", "-")
            kind = hints[f.name]
            base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
            default = f.default if f.default is not dataclasses.MISSING else None
            help_text = f.metadata.get("help", "")
            if default not in (None, ""):
                help_text += f"  [default: {default}]"
            if base is bool:
                func = click.option(f"{flag}/--no-{f.name.replace('_', '-')}", f.name, default=None, help=help_text)(func)
            else:
                kind = TokenCount() if f.metadata.get("count") else base
                func = click.option(flag, f.name, type=kind, default=None, help=help_text)(func)
        return func

    return decorate


def dataclass_from_options(cls, options: dict[str, Any], base: dict[str, Any] | None = None):
    """Build `cls` from a base mapping (a config file) overridden by the flags the user gave."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    data = dict(base or {})
    data.update({k: v for k, v in options.items() if k in names and v is not None})
    return cls.from_dict(data) if hasattr(cls, "from_dict") else cls(**data)
