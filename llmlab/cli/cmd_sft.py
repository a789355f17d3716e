"""`llmlab sft`: supervised fine-tuning (full or LoRA) on instruction / chat records.

`finetune_command` builds the four fine-tuning commands (sft, reward, dpo, ppo) the same way:
one flag per config field (`--help` shows each one's meaning and default), `--config FILE`,
`--resume`, `--json`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import click

from llmlab.cli.common import dataclass_from_options, emit, json_option, options_from_dataclass, print_table
from llmlab.train.finetune_config import SFTConfig


def finetune_command(name: str, config_cls: type, run: Callable[..., dict[str, Any]], help_text: str,
                     summary_keys: Sequence[str], exclude: Sequence[str] = (),
                     extra_keys_prefix: Sequence[str] = ()) -> click.Command:
    from llmlab.train.finetune_config import PRETRAIN_ONLY

    @click.command(name, help=help_text)
    @click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                  help="YAML/JSON file of settings (flags given on the command line override it).")
    @click.option("--resume", is_flag=True,
                  help="Continue the run in --out from its last checkpoint (its saved settings apply; flags override). "
                       "Without it, an --out that holds a run's files is refused.")
    @options_from_dataclass(config_cls, exclude=tuple(PRETRAIN_ONLY) + tuple(exclude))
    @json_option
    def command(config_file, resume, as_json, **options):
        import sys

        from llmlab.config import load_config_file
        from llmlab.outputs import check_writable
        from llmlab.train.run_dir import resume_settings

        base = load_config_file(config_file) if config_file else {}
        if resume:  # the run's saved settings, after checking there is a run to continue
            base = {**base, **resume_settings(options.get("out") or base.get("out"), config_cls)}
        cfg = dataclass_from_options(config_cls, options, base)
        check_writable(cfg.out, flag="--out")  # before the model loads, not at the first save
        log = (lambda msg: print(msg, file=sys.stderr)) if as_json else print
        if as_json:
            cfg.progress = False
        result = run(cfg, resume=resume, log=log)
        summary = {k: result.get(k) for k in summary_keys if k in result}
        summary.update({k: v for k, v in result.items() if k.startswith(tuple(extra_keys_prefix))})
        emit(summary, as_json,
             lambda r: print_table([(k, v) for k, v in r.items()], ["", "value"], title=f"{name} done"))

    return command


def _run(cfg, resume, log):
    from llmlab.train.sft import run_sft

    return run_sft(cfg, resume=resume, log=log)


command = finetune_command(
    "sft", SFTConfig, _run,
    """Supervised fine-tuning: teach a pre-trained model to follow instructions.

    \b
    Data (--data): JSONL records with "messages", "prompt"/"completion" or alpaca
    "instruction"/"input"/"output"; a tinyworld folder (its sft/ split); or "tinyworld".
    The loss covers only the assistant/completion tokens and the token that ends the turn.

    \b
    Examples:
      llmlab sft --model runs/quickstart/run/checkpoint --data runs/quickstart/tinyworld --out runs/sft
      llmlab sft --model M --data my.jsonl --out runs/sft-lora --lora-rank 8 --epochs 3
    With --lora-rank the adapters are merged into a plain checkpoint at the end (OUT/checkpoint).
    With --json the command prints one JSON object (val_loss, checkpoint, steps, seconds, ...).
    """,
    ("val_loss", "val_ppl", "examples", "skipped_long", "step", "tokens", "seconds", "template", "packing",
     "lora_rank", "checkpoint"),
)
