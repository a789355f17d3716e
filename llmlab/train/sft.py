"""Supervised fine-tuning (SFT): the pre-training loop with a completion-only loss.

    llmlab sft --model runs/quickstart/run/checkpoint --data tinyworld --out runs/sft [--lora-rank 8]

SFT is an objective on the one training loop (`llmlab.train.trainer.Trainer`): the batches are
templated instruction/chat examples, packed or padded (`llmlab.data.sft`), and the loss is the
next-token cross-entropy on the assistant tokens and the token that ends the turn. With LoRA only
the adapters train; at the end they are merged into a plain checkpoint (the adapters are kept next
to it as adapter_model.safetensors + adapter_config.json).

This module also holds what every fine-tuning command shares (reward, DPO and PPO import it):
`FinetuneConfig`, resolving `--data tinyworld|DIR|FILE`, loading the starting model, LoRA setup and
the final merge, and `start_run` (settings and the run directory, on llmlab.train.run_dir's rules).

The lesson's `supervised_fine_tuning(model, instruction_dataset)` is kept as a function at the end.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from llmlab.errors import CheckpointError, ConfigError, DataError
from llmlab.train.config import TrainConfig
from llmlab.train.finetune_config import EPOCHS_PLACEHOLDER, FinetuneConfig, SFTConfig
from llmlab.train.trainer import CHECKPOINT_DIR, CONFIG_FILE, Trainer

ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
TINYWORLD_CACHE = Path(".llmlab-cache")


# ---------------------------------------------------------------------------- shared plumbing
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


def start_run(cfg: FinetuneConfig, resume: bool | str, *, outputs: Sequence[str] = (),
              needs: Sequence[str] = ()) -> tuple[torch.device, Any, bool]:
    """Validate settings and the run directory (llmlab.train.run_dir: `outputs` are the command's
    own files besides the run's, `needs` what its checkpoint must hold to resume); returns (device,
    dist info, whether to resume)."""
    from llmlab.checkpoint import resolve_device
    from llmlab.train.distributed import init_distributed
    from llmlab.train.run_dir import prepare_run_dir

    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    resuming = prepare_run_dir(cfg.out, resume, outputs=outputs, needs=needs)
    device = resolve_device(cfg.device)
    dist = init_distributed(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    return device, dist, resuming


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


def plan_budget(cfg: FinetuneConfig, trainer: Trainer, units_per_epoch: int, units_per_step: int,
                tokens_per_step: int) -> None:
    """Steps from --epochs (over `units_per_epoch`), --max-steps or --max-tokens, whichever is smallest."""
    if cfg.epochs is not None:
        steps = max(1, math.ceil(cfg.epochs * units_per_epoch / units_per_step))
        given = cfg.max_steps not in (None, EPOCHS_PLACEHOLDER)
        cfg.max_steps = min(cfg.max_steps, steps) if given else steps
    trainer.plan(tokens_per_step)


# ---------------------------------------------------------------------------- the objective
class SFTLoss:
    """Mean cross-entropy over target tokens; batches from `llmlab.data.sft` (packed or padded)."""

    def __call__(self, model, batch):
        from llmlab.data.sft import model_inputs

        out = model(batch["input_ids"], targets=batch["targets"], **model_inputs(batch))
        return out.loss, {}

    def weight(self, batch) -> float:
        from llmlab.train.objectives import count_targets

        return float(count_targets(batch["targets"]))


def per_example_losses(model, batch: dict[str, torch.Tensor]) -> list[float]:
    """Summed target-token cross-entropy of each example in a packed or padded batch (in the order
    the examples were collated): what the packing test compares."""
    from llmlab.data.sft import model_inputs

    logits = model(batch["input_ids"], **model_inputs(batch)).logits.float()
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), batch["targets"].reshape(-1), reduction="none", ignore_index=-100,
    ).view(batch["targets"].shape)
    if "doc_ids" not in batch:
        return nll.sum(-1).tolist()
    out = []
    for row in range(batch["input_ids"].shape[0]):
        docs = batch["doc_ids"][row]
        for d in range(int(docs.max()) + 1):
            out.append(float(nll[row][docs == d].sum()))
    return out


def make_eval_fn(val_batches: list, objective, device) -> Callable[[torch.nn.Module], dict[str, float]]:
    """Target-token-weighted validation loss and perplexity."""

    def evaluate(model) -> dict[str, float]:
        total = weight = 0.0
        for batch in val_batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            loss, _ = objective(model, batch)
            w = objective.weight(batch)
            total += float(loss) * w
            weight += w
        val = total / max(weight, 1.0)
        return {"val_loss": val, "val_ppl": math.exp(min(val, 50.0))}

    return evaluate


def make_answer_fn(prompts: Sequence[str], tokenizer, max_new_tokens: int = 64):
    """Greedy answers to a few rendered validation prompts, printed at each evaluation."""
    if not prompts:
        return None

    def answer(model) -> list[str]:
        from llmlab.infer import generate_text

        outs = generate_text(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens, temperature=0.0)
        return [p.replace("\n", " | ")[-120:] + " => " + o for p, o in zip(prompts, outs)]

    return answer


# ---------------------------------------------------------------------------- the run
def run_sft(cfg: SFTConfig, resume: bool | str = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    from llmlab.train.distributed import shutdown

    device, dist, resuming = start_run(cfg, resume)
    try:
        return _run_sft(cfg, resuming, device, dist, log)
    finally:
        shutdown()


def load_train_and_val(cfg: FinetuneConfig, kind: str, load: Callable[[Any], list]) -> tuple[list, list, Any]:
    """Training and validation records of `kind` ("sft", "preferences") for --data/--val-data, with
    --val-fraction held out when no validation file is given; also the training file, for logs."""
    train_file, val_file = resolve_split(cfg.data, cfg.val_data, kind, cfg.tinyworld_seed)
    train = load(train_file)
    val = load(val_file) if val_file else None
    if val is None:
        train, val = hold_out(train, cfg.val_fraction, cfg.seed)
    return train, val, train_file


def load_sft_examples(cfg: FinetuneConfig, tokenizer, max_len: int, template: str, log) -> tuple[list, list, int]:
    from llmlab.data.formats import load_sft
    from llmlab.data.sft import tokenize_all

    train, val, train_file = load_train_and_val(cfg, "sft", load_sft)
    train_tok, skipped = tokenize_all(train, template, tokenizer, max_len, cfg.skip_long)
    val_tok, skipped_val = tokenize_all(val, template, tokenizer, max_len, True)
    if skipped:
        log(f"skipped {skipped} training records longer than {max_len} tokens")
    log(f"data: {len(train_tok)} training and {len(val_tok)} validation examples from {train_file}")
    return train_tok, val_tok, skipped


def _run_sft(cfg: SFTConfig, resuming: bool, device, dist, log) -> dict[str, Any]:
    from llmlab.data.sft import (
        check_template, collate_padded, evaluated_units, fixed_batches, pad_id_for, sft_batches,
    )

    model, tokenizer = load_start_model(cfg, device)
    template = check_template(cfg.template, tokenizer)
    seq_len = cfg.seq_len or model.config.context_length
    if seq_len > model.config.context_length:
        raise ConfigError(f"seq_len {seq_len} exceeds the model's context length {model.config.context_length}")
    train, val, skipped = load_sft_examples(cfg, tokenizer, seq_len, template, log)
    if not cfg.completion_only:
        for ex in train:
            ex.trained = [True] * len(ex.trained)
    pad = pad_id_for(tokenizer)
    torch.manual_seed(cfg.seed)
    lora = setup_lora(model, cfg, log)

    batches = sft_batches(train, batch_size=cfg.batch_size, seq_len=seq_len, packing=cfg.packing, pad_id=pad,
                          seed=cfg.seed, rank=dist.rank, world_size=dist.world_size)
    objective = SFTLoss()
    val_batches = fixed_batches(evaluated_units(val, cfg.batch_size, cfg.eval_batches), cfg.batch_size,
                                lambda u: collate_padded(u, pad))
    prompts = []
    for ex in val[: cfg.samples]:
        text = tokenizer.decode(ex.input_ids[: ex.trained.index(True)])
        prompts.append(text)
    trainer = Trainer(
        model, objective, batches, cfg, device=device, dist=dist, tokenizer=tokenizer,
        eval_fn=make_eval_fn(val_batches, objective, device), sample_fn=make_answer_fn(prompts, tokenizer),
        accum_steps=cfg.grad_accum, log=log,
    )
    if resuming:
        trainer.resume()
    per_step = cfg.batch_size * dist.world_size * cfg.grad_accum
    width = seq_len if cfg.packing else int(sum(len(e) for e in train) / len(train))
    plan_budget(cfg, trainer, batches.units_per_epoch, per_step, per_step * width)
    unit = "packed windows" if cfg.packing else "examples"
    log(f"{batches.units_per_epoch} {unit} per epoch; {trainer.state.total_steps} steps; template {template}; "
        f"device {device}")
    result = trainer.train()
    if lora is not None:
        result["checkpoint"] = str(finish_lora(trainer, model, tokenizer, lora))
    result.update(
        val_loss=trainer.state.last_eval.get("val_loss"), examples=len(train), skipped_long=skipped,
        template=template, packing=cfg.packing, lora_rank=cfg.lora_rank,
    )
    return result


# ---------------------------------------------------------------------------- the lesson's function
def supervised_fine_tuning(
    model,
    instruction_dataset: Iterable,
    tokenizer=None,
    *,
    epochs: int = 1,
    learning_rate: float = 1e-3,
    batch_size: int = 8,
    template: str = "plain",
    out_dir: str = ".llmlab-lesson-sft",
):
    """Fine-tune `model` on instruction records ({"instruction", "input", "output"}, or any SFT
    format), as the lesson's function does, and return it.

    `instruction_dataset` may be a list of records or, as in the lesson, an iterable of batches
    (lists of records). Differences from the lesson's sketch: the loss covers only the output and
    the end-of-text token (so the model learns to stop), and each step is a step of llmlab's one
    training loop (clipping, schedule, precision). The tokenizer is needed to turn text into tokens.
    """
    from llmlab.data.formats import parse_sft_record
    from llmlab.data.sft import check_template, collate_padded, pad_id_for, tokenize_sft
    from llmlab.train.lesson import _Queue

    if tokenizer is None:
        raise ConfigError("supervised_fine_tuning needs the model's tokenizer: "
                          "supervised_fine_tuning(model, data, tokenizer)")
    records = []
    for item in instruction_dataset:
        records.extend(item if isinstance(item, (list, tuple)) else [item])
    template = check_template(template, tokenizer)
    C = model.config.context_length
    examples = [tokenize_sft(parse_sft_record(r, f"record {i + 1}"), template, tokenizer, C)
                for i, r in enumerate(records)]
    if not examples:
        raise DataError("instruction_dataset is empty")
    cfg = TrainConfig(
        data="-", out=out_dir, max_steps=10**9, lr=learning_rate, weight_decay=0.0, warmup_steps=0,
        schedule="constant", progress=False, precision="fp32",
    )
    queue = _Queue()
    trainer = Trainer(model, SFTLoss(), queue, cfg, device=next(model.parameters()).device, log=lambda *_: None)
    trainer.metrics.enabled = False
    pad = pad_id_for(tokenizer)
    for _ in range(epochs):
        for i in range(0, len(examples), batch_size):
            queue.batch = collate_padded(examples[i:i + batch_size], pad)
            trainer.train_step()
    return model.eval()

