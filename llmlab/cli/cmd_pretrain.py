"""`llmlab pretrain`: train a language model from scratch on prepared shards."""

from __future__ import annotations

import os

import click

from llmlab.cli.common import dataclass_from_options, emit, json_option, options_from_dataclass, print_table
from llmlab.train.config import TrainConfig


@click.command("pretrain")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="YAML/JSON file of training settings (flags given on the command line override it).")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint (its saved settings apply; flags override). "
                   "Without it, an --out that holds a run's files is refused.")
@options_from_dataclass(TrainConfig)
@json_option
def command(config_file, resume, as_json, **options):
    """Pre-train a language model with next-token prediction.

    \b
    Example:
      llmlab data tinyworld --out data/tw --tokens 5M
      llmlab data prepare --input data/tw --train-tokenizer --vocab-size 2048 --out data/tw-shards
      llmlab pretrain --data data/tw-shards --preset tiny --max-steps 500 --out runs/tiny

    With --json the command ends by printing one JSON object with val_loss, val_bpb, tokens,
    seconds and checkpoint.
    """
    import sys

    from llmlab.config import load_config_file
    from llmlab.outputs import check_writable
    from llmlab.train.pretrain import run_pretraining
    from llmlab.train.run_dir import resume_settings

    base = load_config_file(config_file) if config_file else {}
    if resume:  # the run's saved settings, after checking there is a run to continue
        base = {**base, **resume_settings(options.get("out") or base.get("out"), TrainConfig)}
    cfg = dataclass_from_options(TrainConfig, options, base)
    check_writable(cfg.out, flag="--out")  # before the data and model load, not at the first save
    log = (lambda msg: print(msg, file=sys.stderr)) if as_json else print
    if as_json:
        cfg.progress = False
    result = run_pretraining(cfg, resume=resume, log=log)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun every process gets here; one summary (one JSON object) is enough
    summary = {k: result.get(k) for k in ("val_loss", "val_bpb", "val_ppl", "tokens", "seconds", "step", "checkpoint")}
    emit(summary, as_json, lambda r: print_table([(k, v) for k, v in r.items()], ["", "value"], title="pre-training done"))
