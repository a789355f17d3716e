"""Supervised fine-tuning (SFT): the pre-training loop with a completion-only loss.

    llmlab sft --model runs/quickstart/run/checkpoint --data tinyworld --out runs/sft [--lora-rank 8]

SFT is an objective on the one training loop (`llmlab.train.trainer.Trainer`), run by the fine-tuning
harness (`llmlab.train.finetune.run_finetune`): the batches are templated instruction/chat examples,
packed or padded (`llmlab.data.sft`), and the loss is the next-token cross-entropy on the assistant
tokens and the token that ends the turn. With LoRA only the adapters train; at the end they are merged
into a plain checkpoint (the adapters are kept next to it as adapter_model.safetensors +
adapter_config.json).

The lesson's `supervised_fine_tuning(model, instruction_dataset)` is kept as a function at the end.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import torch

from llmlab.config import IGNORE_INDEX
from llmlab.errors import ConfigError, DataError
from llmlab.train.config import TrainConfig
from llmlab.train.finetune import FinetuneRecipe, FinetuneRun, Parts, load_tokenized, run_finetune
from llmlab.train.finetune_config import FinetuneConfig, SFTConfig
from llmlab.train.trainer import Trainer, move_batch


# ---------------------------------------------------------------------------- the objective
class SFTLoss:
    """Mean cross-entropy over target tokens; batches from `llmlab.data.sft` (packed or padded)."""

    def __call__(self, model, batch):
        from llmlab.data.sft import model_inputs
        from llmlab.train.objectives import with_router_losses

        out = model(batch["input_ids"], targets=batch["targets"], **model_inputs(batch))
        return with_router_losses(out, out.loss)

    def weight(self, batch) -> float:
        from llmlab.train.objectives import count_targets

        return float(count_targets(batch["targets"]))


def per_example_losses(model, batch: dict[str, torch.Tensor]) -> list[float]:
    """Summed target-token cross-entropy of each example in a packed or padded batch (in the order
    the examples were collated): what the packing test compares."""
    from llmlab.data.sft import model_inputs

    logits = model(batch["input_ids"], **model_inputs(batch)).logits.float()
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), batch["targets"].reshape(-1), reduction="none", ignore_index=IGNORE_INDEX,
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
        total, weight = 0.0, 0.0
        for batch in val_batches:
            w = objective.weight(batch)  # counted on the host copy
            loss, _ = objective(model, move_batch(batch, device))
            total = total + loss.detach().double() * w
            weight += w
        val = float(total) / max(weight, 1.0)  # one read per evaluation
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
def load_sft_examples(cfg: FinetuneConfig, tokenizer, max_len: int, template: str, log) -> tuple[list, list, int]:
    """Tokenised (train, validation) SFT examples for --data/--val-data, and how many were too long."""
    from llmlab.data.formats import load_sft
    from llmlab.data.sft import tokenize_all

    def tokenize(records, skip_long):
        return tokenize_all(records, template, tokenizer, max_len, skip_long)

    return load_tokenized(cfg, "sft", load_sft, tokenize, "examples", max_len, log)


class SFTRecipe(FinetuneRecipe):
    def setup(self, run: FinetuneRun) -> None:
        from llmlab.data.sft import check_template, pad_id_for

        cfg = run.cfg
        self.template = check_template(cfg.template, run.tokenizer)
        self.seq_len = run.max_len()
        self.train, self.val, self.skipped = load_sft_examples(cfg, run.tokenizer, self.seq_len, self.template,
                                                               run.log)
        if not cfg.completion_only:
            for ex in self.train:
                ex.trained = [True] * len(ex.trained)
        self.pad = pad_id_for(run.tokenizer)

    def build(self, run: FinetuneRun) -> Parts:
        from llmlab.data.sft import collate_padded, evaluated_units, fixed_batches, sft_batches

        cfg, pad = run.cfg, self.pad
        self.batches = sft_batches(self.train, batch_size=cfg.batch_size, seq_len=self.seq_len, packing=cfg.packing,
                                   pad_id=pad, seed=cfg.seed, rank=run.dist.rank, world_size=run.dist.world_size)
        objective = SFTLoss()
        val_batches = fixed_batches(evaluated_units(self.val, cfg.batch_size, cfg.eval_batches), cfg.batch_size,
                                    lambda u: collate_padded(u, pad))
        prompts = [run.tokenizer.decode(ex.input_ids[: ex.trained.index(True)]) for ex in self.val[: cfg.samples]]
        width = self.seq_len if cfg.packing else int(sum(len(e) for e in self.train) / len(self.train))
        return Parts(objective, self.batches, self.batches.units_per_epoch, width,
                     eval_fn=make_eval_fn(val_batches, objective, run.device),
                     sample_fn=make_answer_fn(prompts, run.tokenizer))

    def describe(self, run: FinetuneRun, trainer) -> str:
        unit = "packed windows" if run.cfg.packing else "examples"
        return (f"{self.batches.units_per_epoch} {unit} per epoch; {trainer.state.total_steps} steps; "
                f"template {self.template}; device {run.device}")

    def results(self, run: FinetuneRun, trainer) -> dict[str, Any]:
        return dict(val_loss=trainer.state.last_eval.get("val_loss"), examples=len(self.train),
                    skipped_long=self.skipped, template=self.template, packing=run.cfg.packing,
                    lora_rank=run.cfg.lora_rank)


def run_sft(cfg: SFTConfig, resume: bool | str = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    return run_finetune(cfg, resume, log, SFTRecipe())


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

