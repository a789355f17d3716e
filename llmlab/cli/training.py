"""The training commands' one shape (pretrain, sft, reward, dpo, ppo): one flag per config field
(`--help` shows each one's meaning and default), `--config FILE`, `--resume`, `--json`, and a
summary at the end. Under torchrun every process runs the command; only rank 0 logs and prints the
summary (and the one JSON object).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

import click

from llmlab.cli.common import dataclass_from_options, emit, json_option, options_from_dataclass, print_table

Run = Callable[..., dict[str, Any]]


def training_command(name: str, config_cls: type, run: Run | str, help_text: str, summary_keys: Sequence[str], *,
                     title: str, exclude: Sequence[str] = (), extra_keys_prefix: Sequence[str] = ()) -> click.Command:
    """A click command that builds `config_cls` from flags (over --config, over a resumed run's
    saved settings) and calls run(cfg, resume=..., log=...); `run` may be "module:function", imported
    only when the command runs (torch stays out of `llmlab --help`)."""

    @click.command(name, help=help_text)
    @click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                  help="YAML/JSON file of settings (flags given on the command line override it).")
    @click.option("--resume", is_flag=True,
                  help="Continue the run in --out from its last checkpoint (its saved settings apply; flags override). "
                       "Without it, an --out that holds a run's files is refused.")
    @options_from_dataclass(config_cls, exclude=exclude)
    @json_option
    def command(config_file, resume, as_json, **options):
        import sys

        from llmlab.config import load_config_file
        from llmlab.outputs import check_writable
        from llmlab.train.distributed import is_main_process
        from llmlab.train.run_dir import resume_settings

        base = load_config_file(config_file) if config_file else {}
        if resume:  # the run's saved settings, after checking there is a run to continue
            base = {**base, **resume_settings(options.get("out") or base.get("out"), config_cls)}
        cfg = dataclass_from_options(config_cls, options, base)
        check_writable(cfg.out, flag="--out")  # before the data and model load, not at the first save
        main = is_main_process()
        if not main:
            log = lambda *_: None  # noqa: E731
        else:
            log = (lambda msg: print(msg, file=sys.stderr)) if as_json else print
        if as_json:
            cfg.progress = False
        result = _resolve(run)(cfg, resume=resume, log=log)
        if not main:
            return  # one summary, one JSON object, whatever the number of processes
        summary = {k: result.get(k) for k in summary_keys if k in result}
        summary.update({k: v for k, v in result.items() if k.startswith(tuple(extra_keys_prefix))})
        emit(summary, as_json, lambda r: print_table([(k, v) for k, v in r.items()], ["", "value"], title=title))

    return command


def finetune_command(name: str, config_cls: type, run: Run | str, help_text: str, summary_keys: Sequence[str],
                     exclude: Sequence[str] = (), extra_keys_prefix: Sequence[str] = ()) -> click.Command:
    """A fine-tuning command (sft, reward, dpo, ppo): pre-training-only settings are not flags."""
    from llmlab.train.finetune_config import PRETRAIN_ONLY

    return training_command(name, config_cls, run, help_text, summary_keys, title=f"{name} done",
                            exclude=tuple(PRETRAIN_ONLY) + tuple(exclude), extra_keys_prefix=extra_keys_prefix)


def _resolve(run: Run | str) -> Run:
    if callable(run):
        return run
    module, _, attr = run.partition(":")
    return getattr(importlib.import_module(module), attr)
