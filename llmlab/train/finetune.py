"""The fine-tuning harness: what SFT, reward modelling, DPO and PPO share, and the one run they all follow.

    run_finetune(cfg, resume, log, recipe)

A recipe supplies only what differs between objectives; the run does the rest, in this order:

    start the run (settings, run directory, device, torchrun processes); load the model and tokenizer
    recipe.setup(run)            data, and what needs the model as loaded (DPO's reference log-probs)
    seed; LoRA, if asked
    recipe.build(run) -> Parts   the objective, batches, evaluation, heads trained beside the model
    the Trainer: resume if asked (heads too, then recipe.resumed), budget, recipe.describe, train
    merge LoRA adapters into a plain checkpoint; recipe.results(run, trainer) -> the summary's extra keys

A new objective is a loss class (`objective(model, batch) -> (loss, metrics)`, see
llmlab.train.objectives) plus a FinetuneRecipe subclass with setup and build: see llmlab.train.sft for
the shortest one. The data helpers resolve `--data tinyworld|DIR|FILE` into train/validation records.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from llmlab.errors import CheckpointError, ConfigError, DataError
from llmlab.train.finetune_config import EPOCHS_PLACEHOLDER, FinetuneConfig
from llmlab.train.run_dir import start_run
from llmlab.train.trainer import CHECKPOINT_DIR, CONFIG_FILE, Trainer

ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
TINYWORLD_CACHE = Path(".llmlab-cache")


# ---------------------------------------------------------------------------- the recipe and the run
@dataclass
class FinetuneRun:
    """What a recipe gets: the settings, where the run happens, and the model being trained."""

    cfg: FinetuneConfig
    device: torch.device
    dist: Any  # llmlab.train.distributed.DistInfo
    log: Callable[[str], None]
    resuming: bool
    model: torch.nn.Module
    tokenizer: Any
    lora: Any = None  # the LoRAConfig once adapters are on (build and later)

    @property
    def units_per_step(self) -> int:
        """Units (examples, pairs, responses) per optimizer step, all processes together."""
        return self.cfg.batch_size * self.dist.world_size * self.cfg.grad_accum

    def max_len(self) -> int:
        """Tokens per example: --seq-len, or the model's context (which no example may exceed)."""
        context = self.model.config.context_length
        seq_len = self.cfg.seq_len or context
        if seq_len > context:
            raise ConfigError(f"seq_len {seq_len} exceeds the model's context length {context}")
        return seq_len


@dataclass
class Parts:
    """What an objective hands the training loop, and the units its budget counts."""

    objective: Any
    batches: Any
    units_per_epoch: int  # what --epochs passes over (examples, packed windows, pairs, prompts)
    tokens_per_unit: float  # for --max-tokens
    eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None
    sample_fn: Callable[[torch.nn.Module], list[str]] | None = None
    # Modules trained beside the model (a reward or value head), by their checkpoint file: the run
    # trains their parameters, writes them into every checkpoint and restores them on resume.
    heads: dict[str, torch.nn.Module] = field(default_factory=dict)
    checkpoint_extra: Callable[[Path], None] | None = None  # any other files a checkpoint holds

    def write_extra(self) -> Callable[[Path], None] | None:
        if not self.heads and self.checkpoint_extra is None:
            return None

        def write(directory: Path) -> None:
            for name, head in self.heads.items():
                save_head(head, Path(directory) / name)
            if self.checkpoint_extra is not None:
                self.checkpoint_extra(directory)

        return write


class FinetuneRecipe:
    """One objective's part of a fine-tuning run (see the module docstring for when each hook runs)."""

    outputs: Sequence[str] = ()  # files the command writes in --out besides the run's own (run_dir)
    needs: Sequence[str] = ()  # files its checkpoint must hold to be resumed
    one_process: str | None = None  # the error to give under torchrun, if the objective cannot run there

    def setup(self, run: FinetuneRun) -> None:
        """Load the data (and whatever needs the model as loaded, before LoRA)."""

    def build(self, run: FinetuneRun) -> Parts:
        raise NotImplementedError

    def resumed(self, run: FinetuneRun) -> None:
        """After the trainer (and the heads) resumed from the run's checkpoint."""

    def describe(self, run: FinetuneRun, trainer: Trainer) -> str:
        return f"{trainer.state.total_steps} steps of {run.units_per_step} units; device {run.device}"

    def results(self, run: FinetuneRun, trainer: Trainer) -> dict[str, Any]:
        """Keys added to the trainer's result (the command's summary picks from them)."""
        return {}


def run_finetune(cfg: FinetuneConfig, resume: bool | str, log: Callable[[str], None],
                 recipe: FinetuneRecipe) -> dict[str, Any]:
    """Fine-tune cfg.model with `recipe`'s objective; returns the trainer's result plus recipe.results.
    resume: as for llmlab.train.run_dir.prepare_run_dir."""
    from llmlab.train.distributed import shutdown

    device, dist, resuming = start_run(cfg, resume, outputs=recipe.outputs, needs=recipe.needs)
    try:
        if dist.enabled and recipe.one_process:
            raise ConfigError(recipe.one_process)
        model, tokenizer = load_start_model(cfg, device)
        run = FinetuneRun(cfg, device, dist, log, resuming, model, tokenizer)
        recipe.setup(run)
        torch.manual_seed(cfg.seed)
        run.lora = setup_lora(model, cfg, log)
        parts = recipe.build(run)
        write_extra = parts.write_extra()
        trainer = Trainer(
            model, parts.objective, parts.batches, cfg, device=device, dist=dist, tokenizer=tokenizer,
            eval_fn=parts.eval_fn, sample_fn=parts.sample_fn, accum_steps=cfg.grad_accum,
            checkpoint_extra=write_extra, extra_parameters=[p for h in parts.heads.values() for p in h.parameters()],
            log=log,
        )
        if resuming and trainer.resume():
            for name, head in parts.heads.items():
                restore_head(head, Path(cfg.out) / CHECKPOINT_DIR / name)
            recipe.resumed(run)
        per_step = run.units_per_step
        plan_budget(cfg, trainer, parts.units_per_epoch, per_step, int(per_step * parts.tokens_per_unit))
        log(recipe.describe(run, trainer))
        result = trainer.train()
        if run.lora is not None:
            result["checkpoint"] = str(finish_lora(trainer, model, tokenizer, run.lora, extra=write_extra))
        result.update(recipe.results(run, trainer))
        return result
    finally:
        shutdown()


# ---------------------------------------------------------------------------- model, adapters, heads, budget
def load_start_model(cfg: FinetuneConfig, device) -> tuple[torch.nn.Module, Any]:
    """The starting checkpoint's model and tokenizer, on `device`, in fp32 for training."""
    import llmlab

    model, tokenizer = llmlab.load(cfg.model, device=device, dtype=torch.float32)
    if tokenizer is None:
        raise CheckpointError(f"{cfg.model} has no tokenizer.json; fine-tuning needs the model's tokenizer")
    return model, tokenizer


def setup_lora(model: torch.nn.Module, cfg: FinetuneConfig, log: Callable[[str], None]) -> Any:
    """Apply LoRA if asked; returns its config (or None). Logs trainable / total parameters."""
    from llmlab.model.lora import apply_lora, count_trainable

    lora = cfg.lora_config()
    if lora is not None:
        apply_lora(model, lora)
    trainable, total = count_trainable(model)
    what = f"LoRA r={lora.rank} on {','.join(lora.targets)}" if lora else "full fine-tuning"
    log(f"{what}: {trainable:,} of {total:,} parameters train ({100 * trainable / total:.2f}%)")
    return lora


def finish_lora(trainer: Trainer, model: torch.nn.Module, tokenizer, lora,
                extra: Callable[[Path], None] | None = None) -> Path:
    """Merge the adapters and write the final checkpoint as a plain model (loadable anywhere),
    with the adapter tensors and their config beside it (and whatever `extra` writes, e.g. a head)."""
    from safetensors.torch import save_file

    from llmlab.checkpoint import save_checkpoint
    from llmlab.model.lora import lora_state_dict, merge_and_unload

    adapters = {k: v.detach().contiguous().cpu() for k, v in lora_state_dict(model).items()}
    merge_and_unload(model)
    ckpt = Path(trainer.cfg.out) / CHECKPOINT_DIR

    def write_extra(tmp: Path) -> None:
        save_file(adapters, str(tmp / ADAPTER_FILE))
        meta = {**lora.to_dict(), "merged": True, "base_model": trainer.cfg.model, "step": trainer.state.step}
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
        trainer.cfg.save(tmp / CONFIG_FILE)
        if extra is not None:
            extra(tmp)

    if trainer.dist.is_main:
        save_checkpoint(ckpt, model, tokenizer, write_extra=write_extra, replace=True)  # the run's own checkpoint/
    return ckpt


def save_head(head: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in head.state_dict().items()}, str(path))


def restore_head(head: torch.nn.Module, path: Path) -> None:
    """Load a head's weights saved by save_head (a one-line CheckpointError if they do not fit)."""
    from llmlab.checkpoint import read_safetensors

    try:
        head.load_state_dict(read_safetensors(path))
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit this model: {str(exc).splitlines()[0]}") from None


def plan_budget(cfg: FinetuneConfig, trainer: Trainer, units_per_epoch: int, units_per_step: int,
                tokens_per_step: int) -> None:
    """Steps from --epochs (over `units_per_epoch`), --max-steps or --max-tokens, whichever is smallest."""
    if cfg.epochs is not None:
        steps = max(1, math.ceil(cfg.epochs * units_per_epoch / units_per_step))
        given = cfg.max_steps not in (None, EPOCHS_PLACEHOLDER)
        cfg.max_steps = min(cfg.max_steps, steps) if given else steps
    trainer.plan(tokens_per_step)


# ---------------------------------------------------------------------------- data
def tinyworld_dir(seed: int = 0, cache: Path = TINYWORLD_CACHE) -> Path:
    """A tinyworld dataset folder for `seed` (sft/, preferences/, probes/), generated once."""
    out = Path(cache) / f"tinyworld-seed{seed}"
    if (out / "sft" / "train.jsonl").is_file():
        return out
    try:
        from llmlab.data.tinyworld import generate_dataset
    except ImportError:
        raise DataError("tinyworld's generate_dataset is not available; pass --data FILE (JSONL records)") from None
    import inspect

    params = inspect.signature(generate_dataset).parameters
    kwargs: dict[str, Any] = {"seed": seed} if "seed" in params else {}
    if "tokens" in params:
        kwargs["tokens"] = 200_000  # the derived sets are what fine-tuning needs; keep pre-training text small
    for name in ("sft_records", "preference_records"):
        if name in params:
            kwargs[name] = 4000
    generate_dataset(out, **kwargs)
    return out


def resolve_split(data: str, val_data: str | None, subdir: str, seed: int = 0) -> tuple[Path, Path | None]:
    """(train file, validation file or None) for --data tinyworld | a tinyworld folder | a file."""
    if data == "tinyworld":
        root = tinyworld_dir(seed)
    else:
        root = Path(data)
    if root.is_dir():
        for base in (root / subdir, root):
            if (base / "train.jsonl").is_file():
                val = base / "val.jsonl"
                return base / "train.jsonl", Path(val_data) if val_data else (val if val.is_file() else None)
        raise DataError(f"{root} holds no {subdir}/train.jsonl (or train.jsonl)")
    if not root.is_file():
        raise DataError(f"data not found: {root}")
    return root, Path(val_data) if val_data else None


def hold_out(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """Split off a deterministic validation share (at least one item, never all)."""
    if len(items) < 2:
        raise DataError(f"need at least 2 records to hold out a validation set, got {len(items)}; pass --val-data")
    import random

    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = min(len(items) - 1, max(1, round(fraction * len(items))))
    val = set(order[:n_val])
    return [x for i, x in enumerate(items) if i not in val], [items[i] for i in sorted(val)]


def load_train_and_val(cfg: FinetuneConfig, kind: str, load: Callable[[Any], list]) -> tuple[list, list, Any]:
    """Training and validation records of `kind` ("sft", "preferences") for --data/--val-data, with
    --val-fraction held out when no validation file is given; also the training file, for logs."""
    train_file, val_file = resolve_split(cfg.data, cfg.val_data, kind, cfg.tinyworld_seed)
    train = load(train_file)
    val = load(val_file) if val_file else None
    if val is None:
        train, val = hold_out(train, cfg.val_fraction, cfg.seed)
    return train, val, train_file


def load_tokenized(cfg: FinetuneConfig, kind: str, load: Callable[[Any], list],
                   tokenize: Callable[[list, bool], tuple[list, int]], unit: str, max_len: int,
                   log: Callable[[str], None]) -> tuple[list, list, int]:
    """Training and validation records of `kind` (load_train_and_val), tokenised by
    tokenize(records, skip_long) -> (units, skipped): training records longer than `max_len` are
    dropped (and counted) only with --skip-long, validation ones always. Returns (train, val, skipped)."""
    train, val, train_file = load_train_and_val(cfg, kind, load)
    train_units, skipped = tokenize(train, cfg.skip_long)
    val_units, _ = tokenize(val, True)
    if skipped:
        log(f"skipped {skipped} training {unit} longer than {max_len} tokens")
    log(f"data: {len(train_units)} training and {len(val_units)} validation {unit} from {train_file}")
    return train_units, val_units, skipped
