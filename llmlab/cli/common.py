"""Shared pieces of the CLI: --json output, tables, and common options."""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterable, Sequence

import click

from llmlab.units import format_cell

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
threads_option = click.option(
    "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)."
)


class OutputPath(click.Path):
    """The type of an option naming an output (`kind` "dir" or "file"): a path that cannot be written
    (a file where a folder is expected or the reverse, a parent that cannot be created, no permission)
    fails in one line while the flags are read, before any of the command's work. `replaced`: the
    command builds the output beside the path and renames it over (llmlab.outputs.check_writable)."""

    def __init__(self, kind: str = "dir", *, replaced: bool = False):
        super().__init__(file_okay=kind == "file", dir_okay=kind == "dir")
        self.kind, self.replaced = kind, replaced

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from llmlab.outputs import check_writable

        flag = param.opts[0] if param is not None and param.opts else None
        check_writable(value, kind=self.kind, flag=flag, replaced=self.replaced)
        return super().convert(value, param, ctx)


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


def _remember_quantize(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta["llmlab.quantize"] = value


# Any command that loads a model for inference takes this flag; load_checkpoint reads it from the
# click context, so the commands need no code of their own for it.
quantize_option = click.option(
    "--quantize", type=click.Choice(["int8", "int4"]), default=None, expose_value=False, callback=_remember_quantize,
    help="Quantise the linear layers for inference: int8 per channel or int4 in groups of 32 "
         "(llmlab quantize saves a quantised checkpoint instead).",
)


def load_checkpoint(model_dir: str, device: str = "auto", *, dtype: str | None = None,
                    threads: int | None = None, quantize: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a command that reads and writes text: `llmlab.checkpoint.load` with a
    tokenizer required, the --dtype flag's name as a torch dtype, and --threads applied first.
    quantize: "int8" / "int4", or None for the command's --quantize flag (quantize_option), if any."""
    import torch

    from llmlab.checkpoint import load

    if threads:
        torch.set_num_threads(threads)
    if quantize is None:
        ctx = click.get_current_context(silent=True)
        quantize = ctx.meta.get("llmlab.quantize") if ctx is not None else None
    return load(model_dir, device, dtype=getattr(torch, dtype) if dtype else None, require_tokenizer=True,
                quantize=quantize)


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


def command_modules(package: str, prefix: str = "") -> dict[str, str]:
    """{name: "module:command"} for the modules of `package` named PREFIX + name (`_` in a name
    becomes `-`; modules starting with `_` are helpers): the one way commands are found, by their
    file names, so a group can list them without importing them."""
    import importlib
    import pkgutil

    found = pkgutil.iter_modules(importlib.import_module(package).__path__)
    return {m.name[len(prefix):].replace("_", "-"): f"{package}.{m.name}:command"
            for m in sorted(found, key=lambda m: m.name) if m.name.startswith(prefix) and not m.name.startswith("_")}


class LazyGroup(click.Group):
    """A group whose subcommands live in other modules and are imported only when used.

    lazy_subcommands maps a name to "module.path:attribute" (`command_modules` lists a package).
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
        from llmlab.errors import ConfigError
        from llmlab.units import parse_positive_int

        try:
            return parse_positive_int(str(value), "token count")
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
            flags = f.metadata.get("flags") or (flag,)
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
                func = click.option(*flags, f.name, type=kind, default=None, help=help_text)(func)
        return func

    return decorate


def dataclass_from_options(cls, options: dict[str, Any], base: dict[str, Any] | None = None):
    """Build `cls` from a base mapping (a config file) overridden by the flags the user gave."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    data = dict(base or {})
    data.update({k: v for k, v in options.items() if k in names and v is not None})
    return cls.from_dict(data) if hasattr(cls, "from_dict") else cls(**data)
