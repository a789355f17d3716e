"""Pre-training: build the model and data from a TrainConfig and run the training loop."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from llmlab.checkpoint import load_config
from llmlab.config import ModelConfig, load_config_file, preset
from llmlab.data.loader import WindowLoader, eval_batches
from llmlab.data.shards import PreparedData
from llmlab.data.token_bytes import token_byte_lengths
from llmlab.errors import ConfigError, DataError
from llmlab.model import TransformerLM
from llmlab.train.config import TrainConfig
from llmlab.train.distributed import DistInfo, all_reduce_sum, shutdown
from llmlab.train.objectives import NextTokenLoss
from llmlab.train.run_dir import start_run
from llmlab.train.trainer import CHECKPOINT_DIR, Trainer


def build_model_config(cfg: TrainConfig, vocab_size: int) -> ModelConfig:
    if cfg.init_from:
        model_cfg = load_config(cfg.init_from)
    else:
        overrides = load_config_file(cfg.model_config) if cfg.model_config else {}
        # The vocabulary follows the data's tokenizer unless the user fixed it explicitly.
        overrides.setdefault("vocab_size", vocab_size)
        model_cfg = preset(cfg.preset, **overrides)
    if vocab_size > model_cfg.vocab_size:
        raise DataError(
            f"the data's tokenizer has {vocab_size} tokens but the model's vocabulary has {model_cfg.vocab_size}: "
            "they do not match"
        )
    return model_cfg


def check_init_tokenizer(init_from: str, tokenizer) -> None:
    """Weights (--init-from, or the run being resumed) learnt with another vocabulary would read every
    token id as a different token: the sizes can agree while the tokens do not, so compare the
    vocabularies themselves."""
    from llmlab.tokenizer import Tokenizer

    if not (Path(init_from) / "tokenizer.json").is_file():
        return  # nothing to compare against (weights only); the vocabulary size is still checked
    theirs = Tokenizer.from_pretrained(init_from)
    if theirs.backend.get_vocab(with_added_tokens=True) != tokenizer.backend.get_vocab(with_added_tokens=True):
        raise DataError(
            f"the data was tokenised with a different tokenizer than {init_from}'s, so its token ids do not match "
            f"the model's vocabulary; prepare the data with `llmlab data prepare --tokenizer {init_from}`"
        )


def make_eval_fn(split, seq_len: int, batch_size: int, max_windows: int, byte_lengths, dist: DistInfo, device):
    """Validation loss (nats/token), perplexity and bits per byte over fixed validation windows,
    shared out among processes."""
    byte_lengths = torch.as_tensor(byte_lengths)
    batches = list(eval_batches(split, seq_len, batch_size, max_windows))

    def evaluate(model) -> dict[str, float]:
        nats = tokens = n_bytes = 0.0
        for i, batch in enumerate(batches):
            if i % dist.world_size != dist.rank:
                continue
            x, y = batch["input_ids"].to(device), batch["targets"].to(device)
            logits = model(x).logits.float()
            loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
            nats += float(loss)
            tokens += y.numel()
            n_bytes += float(byte_lengths[y.cpu()].sum())
        nats, tokens, n_bytes = all_reduce_sum([nats, tokens, n_bytes], device)
        val_loss = nats / max(tokens, 1)
        return {
            "val_loss": val_loss,
            "val_ppl": math.exp(min(val_loss, 50.0)),
            "val_bpb": nats / (math.log(2) * max(n_bytes, 1)),
        }

    return evaluate


def make_sample_fn(tokenizer, prompt: str, n: int, max_new_tokens: int = 48):
    def sample(model) -> list[str]:
        from llmlab.infer import generate_text

        return [
            prompt + generate_text(model, tokenizer, prompt, max_new_tokens=max_new_tokens, temperature=0.8, top_k=40, seed=i)
            for i in range(n)
        ]

    return sample if n > 0 else None


def run_pretraining(cfg: TrainConfig, resume: bool | str = False, log=print) -> dict[str, Any]:
    """Train as `cfg` says. resume: True continues the run in cfg.out (or fails saying what is
    missing), False starts a new one (refused where a run's files are), "auto" does whichever fits
    (see llmlab.train.run_dir)."""
    device, dist, resuming = start_run(cfg, resume)
    try:
        return _run(cfg, resuming, device, dist, log)
    finally:
        shutdown()


_ARCHITECTURE = ("n_layer", "d_model", "n_head", "n_kv_head", "d_ff", "context_length", "position", "norm", "mlp")


def _check_same_model(cfg: TrainConfig, out: Path, saved: ModelConfig, vocab_size: int) -> None:
    """A resumed run keeps the model it was started with: refuse a --preset or --model-config that
    asks for another one instead of silently training the old model under the new name."""
    if cfg.init_from:
        return
    wanted = build_model_config(cfg, vocab_size)
    diff = [f"{k} {getattr(saved, k)} (asked: {getattr(wanted, k)})" for k in _ARCHITECTURE
            if getattr(saved, k) != getattr(wanted, k)]
    if diff:
        raise ConfigError(
            f"{out} holds a run of another model ({', '.join(diff)}); resuming keeps that model, so "
            f"--preset {cfg.preset}{' --model-config ' + cfg.model_config if cfg.model_config else ''} cannot apply: "
            "choose another --out for a new run"
        )


def _run(cfg: TrainConfig, has_run: bool, device, dist: DistInfo, log) -> dict[str, Any]:
    out = Path(cfg.out)
    ckpt = out / CHECKPOINT_DIR
    data = PreparedData(cfg.data)
    tokenizer = data.load_tokenizer()
    if tokenizer.fingerprint() != data.manifest.get("tokenizer_fingerprint"):
        raise DataError(f"{data.tokenizer_dir} is not the tokenizer the shards were made with")
    weights_from = str(ckpt) if has_run else cfg.init_from
    if weights_from:
        check_init_tokenizer(weights_from, tokenizer)
    model_cfg = load_config(ckpt) if has_run else build_model_config(cfg, tokenizer.vocab_size)
    if has_run:
        _check_same_model(cfg, out, model_cfg, tokenizer.vocab_size)
    if tokenizer.vocab_size > model_cfg.vocab_size:
        raise DataError(f"the data's tokenizer ({tokenizer.vocab_size} tokens) does not fit the model's vocabulary ({model_cfg.vocab_size})")
    seq_len = cfg.seq_len or model_cfg.context_length
    if seq_len > model_cfg.context_length:
        raise ConfigError(f"seq_len {seq_len} exceeds the model's context length {model_cfg.context_length}")

    torch.manual_seed(cfg.seed)
    model = TransformerLM(model_cfg)
    if cfg.init_from and not has_run:
        from llmlab.checkpoint import load_model

        model.load_state_dict(load_model(cfg.init_from).state_dict())
    model.to(device)

    micro_tokens = cfg.batch_size * seq_len * dist.world_size
    accum = 1
    if cfg.global_batch_tokens:
        accum, rem = divmod(cfg.global_batch_tokens, micro_tokens)
        if rem or accum < 1:
            raise ConfigError(
                f"global_batch_tokens ({cfg.global_batch_tokens}) must be a multiple of batch_size x seq_len x "
                f"processes = {micro_tokens}"
            )
    loader = WindowLoader(
        data.split("train"), seq_len, cfg.batch_size, seed=cfg.seed, rank=dist.rank, world_size=dist.world_size,
        pin_memory=device.type == "cuda",
    )
    eval_fn = make_eval_fn(
        data.split("val"), seq_len, cfg.batch_size, cfg.eval_windows, token_byte_lengths(tokenizer), dist, device
    )
    trainer = Trainer(
        model, NextTokenLoss(), loader, cfg, device=device, dist=dist, tokenizer=tokenizer, eval_fn=eval_fn,
        sample_fn=make_sample_fn(tokenizer, cfg.sample_prompt, cfg.samples), accum_steps=accum, log=log,
    )
    if has_run:
        trainer.resume()
    trainer.plan(micro_tokens * accum)
    if dist.is_main:
        n = model.num_parameters()
        log(
            f"model: {n / 1e6:.2f}M parameters ({model_cfg.n_layer} layers, d_model {model_cfg.d_model}); "
            f"{micro_tokens * accum:,} tokens per step; {loader.windows_per_epoch * seq_len:,}-token training split; "
            f"device {device}, precision {trainer.precision}"
        )
    result = trainer.train()
    result["val_loss"] = trainer.state.last_eval.get("val_loss")
    result["val_bpb"] = trainer.state.last_eval.get("val_bpb")
    result["val_ppl"] = trainer.state.last_eval.get("val_ppl")
    return result
