"""The run-directory rules of every training command: start fresh, resume, or refuse, decided before
any training work and without writing anything.

A run directory (--out) is this project's resumable run when its `checkpoint/` holds the trainer's
state next to the model: trainer_state.pt, config.json and model.safetensors (plus what the command
adds, e.g. PPO's value head). A run writes train_config.json, metrics.jsonl, loss_curve.png and
checkpoint/ (and the command's own extras), so:
  * without --resume, a directory holding any of those is refused: a new run would overwrite a
    checkpoint and truncate a metrics log it did not create;
  * with --resume, anything but a complete, readable checkpoint is refused, naming what is missing
    or corrupt; a failed --resume never truncates metrics.jsonl nor touches checkpoint/;
  * resume="auto" (the quickstart and other recipes that continue when re-run) resumes a run that is
    there, starts one where there is none, and restarts its own attempt that stopped before its
    first checkpoint (that attempt's train_config.json names this directory as its --out).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Sequence

from llmlab.checkpoint import CONFIG_FILE as MODEL_CONFIG_FILE
from llmlab.checkpoint import WEIGHTS_FILE
from llmlab.errors import CheckpointError, ConfigError
from llmlab.train.metrics_log import METRICS_FILE, PLOT_FILE
from llmlab.train.trainer import CHECKPOINT_DIR, CONFIG_FILE, TRAINER_STATE, recover_interrupted_save

RUN_OUTPUTS = (CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, PLOT_FILE)
MODEL_FILES = (MODEL_CONFIG_FILE, WEIGHTS_FILE)


def start_run(cfg, resume: bool | str, *, outputs: Sequence[str] = (),
              needs: Sequence[str] = ()) -> tuple[Any, Any, bool]:
    """Begin a training command's run: validate `cfg` (a TrainConfig), decide on its run directory
    (prepare_run_dir: `outputs`, `needs`), then pick the device and join torchrun's processes.
    Returns (device, dist info, whether to resume); the caller ends with distributed.shutdown()."""
    import torch

    from llmlab.checkpoint import resolve_device
    from llmlab.train.distributed import init_distributed

    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # Before the process group forms, so no process has written into the directory yet.
    resuming = prepare_run_dir(cfg.out, resume, outputs=outputs, needs=needs)
    device = resolve_device(cfg.device)
    dist = init_distributed(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    return device, dist, resuming


def prepare_run_dir(out: str | Path, resume: bool | str, *, outputs: Sequence[str] = (),
                    needs: Sequence[str] = ()) -> bool:
    """True if the run in `out` is to be resumed, False if a fresh run may start there; otherwise a
    one-line ConfigError/CheckpointError. `outputs`: files the command writes besides RUN_OUTPUTS;
    `needs`: files its checkpoint must hold besides the model and trainer state."""
    out = Path(out)
    recover_interrupted_save(out / CHECKPOINT_DIR)
    _refuse_finished_lora(out)
    if resume is True:
        check_resumable(out, needs)
        return True
    found = run_files(out, outputs)
    if not found:
        return False
    if resume == "auto":
        if (out / CHECKPOINT_DIR).exists():
            check_resumable(out, needs)
            return True
        if _own_unsaved_attempt(out):
            return False
    if _is_resumable(out, needs):
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    them = "it" if len(found) == 1 else "them"
    raise ConfigError(f"{out} already holds {', '.join(found)} but no run that --resume can continue, and a new run "
                      f"would overwrite {them}: choose another --out")


def run_files(out: Path, outputs: Sequence[str] = ()) -> list[str]:
    """The names a run writes that already exist in `out` (folders with a trailing /)."""
    return [name + "/" * (out / name).is_dir() for name in (*RUN_OUTPUTS, *outputs) if (out / name).exists()]


def check_resumable(out: str | Path, needs: Sequence[str] = ()) -> Path:
    """The checkpoint directory of the run in `out`, or a one-line CheckpointError naming what is
    missing or unreadable. Reads only file headers: the full load (resume) checks the rest."""
    out = Path(out)
    ckpt = out / CHECKPOINT_DIR
    recover_interrupted_save(ckpt)
    if not ckpt.is_dir():
        if not out.exists():
            raise CheckpointError(f"cannot resume: {out} does not exist (check --out)")
        found = run_files(out)
        why = (f"it holds only {', '.join(found)}: the run stopped before its first checkpoint, so start it again "
               "with another --out" if found else "no run was started there")
        raise CheckpointError(f"cannot resume: {out} has no {CHECKPOINT_DIR}/ ({why})")
    _refuse_finished_lora(out)
    for name in (*MODEL_FILES, TRAINER_STATE, *needs):
        if not (ckpt / name).is_file():
            hint = (" (a model without training state: start a new run from it, e.g. --init-from or --model "
                    f"{ckpt})" if name == TRAINER_STATE else "")
            raise CheckpointError(f"cannot resume: {ckpt / name} is missing{hint}")
    from llmlab.checkpoint import load_config

    load_config(ckpt)  # names config.json if it is unreadable
    for name in (WEIGHTS_FILE, *needs):
        if name.endswith(".safetensors"):
            _check_safetensors(ckpt / name)
    _check_torch_archive(ckpt / TRAINER_STATE)
    return ckpt


def _refuse_finished_lora(out: Path) -> None:
    """A LoRA run ends by merging its adapters into a plain model, which has nothing left to resume."""
    from llmlab.train.finetune import ADAPTER_CONFIG

    ckpt = out / CHECKPOINT_DIR
    try:
        merged = json.loads((ckpt / ADAPTER_CONFIG).read_text()).get("merged")
    except (OSError, ValueError, AttributeError):
        return
    if merged:
        raise ConfigError(f"{out} holds a finished LoRA run (adapters merged); to train further start a new "
                          f"run from it: --model {ckpt}")


def _is_resumable(out: Path, needs: Sequence[str]) -> bool:
    try:
        check_resumable(out, needs)
    except CheckpointError:
        return False
    return True


def _own_unsaved_attempt(out: Path) -> bool:
    """`out` holds only what an earlier attempt of a run into `out` wrote before its first
    checkpoint: its train_config.json (naming `out` as --out), maybe metrics.jsonl and the plot."""
    if (out / CHECKPOINT_DIR).exists() or not (out / CONFIG_FILE).is_file():
        return False
    try:
        saved_out = json.loads((out / CONFIG_FILE).read_text()).get("out")
    except (ValueError, OSError, AttributeError):
        return False
    return isinstance(saved_out, str) and os.path.abspath(saved_out) == os.path.abspath(out)


def _check_safetensors(file: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            f.keys()  # the header is parsed, and the data it describes checked to be all there
    except Exception as exc:  # SafetensorError, OSError, ... : all mean "unreadable"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"cannot resume: {file} is corrupt or truncated ({reason})") from None


def _check_torch_archive(file: Path) -> None:
    """torch.save writes a zip archive whose directory is at the end: a cut-off file has none."""
    try:
        with zipfile.ZipFile(file) as archive:
            archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"cannot resume: {file} is corrupt or truncated ({exc})") from None


# ---------------------------------------------------------------------------- the saved settings
def resume_settings(out: str | Path | None, config_cls: type) -> dict[str, Any]:
    """The settings the run in `out` was started with (its train_config.json), for --resume: the
    run is checked first, so a missing run fails here, before any flag is read into a config."""
    if not out:
        raise ConfigError("--resume needs --out: the run directory to continue")
    out = Path(out)
    ckpt = check_resumable(out)
    for file in (out / CONFIG_FILE, ckpt / CONFIG_FILE):  # the checkpoint keeps a copy of the settings
        if file.is_file():
            from llmlab.config import load_config_file

            settings = config_cls.resolve_saved_paths(load_config_file(file), out)
            settings["out"] = str(out)  # where the run is now, whatever it was started as
            return settings
    raise CheckpointError(f"cannot resume: {out / CONFIG_FILE} is missing (the run's settings)")
