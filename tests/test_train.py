"""The data pipeline and the training loop: shards, loader, resume after SIGKILL, DDP, robustness."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from llmlab.data.loader import WindowLoader, eval_batches
from llmlab.data.shards import PreparedData, prepare
from llmlab.errors import ConfigError, DataError
from llmlab.train.config import TrainConfig
from llmlab.train.metrics_log import read_metrics

SMALL_MODEL = {"n_layer": 2, "d_model": 64, "n_head": 4, "n_kv_head": 2, "context_length": 64}


def synthetic_corpus(path: Path, n_docs: int = 400, seed: int = 0) -> Path:
    rng = random.Random(seed)
    names, pets, places = ["Mia", "Tom", "Sam", "Lily", "Ben"], ["dog", "cat", "bird"], ["park", "shop", "river"]
    with open(path, "w") as f:
        for _ in range(n_docs):
            n, p = rng.choice(names), rng.choice(pets)
            text = f"{n} had a {p}. The {p} liked the {rng.choice(places)}. {n} was {rng.choice(['happy', 'sad'])}."
            f.write(json.dumps({"text": text}) + "\n")
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory, small_tokenizer):
    root = tmp_path_factory.mktemp("shards")
    corpus = synthetic_corpus(root / "corpus.jsonl")
    prepare([str(corpus)], root / "data", small_tokenizer, val_fraction=0.1, progress=False)
    model_config = root / "model.json"
    model_config.write_text(json.dumps(SMALL_MODEL))
    return root / "data", model_config


def run_cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, "-m", "llmlab.cli.main", *args], capture_output=True, text=True,
                          env=env, **kwargs)


def train_args(data: Path, model_config: Path, out: Path, steps: int = 24) -> list[str]:
    return [
        "pretrain", "--data", str(data), "--model-config", str(model_config), "--out", str(out),
        "--seq-len", "32", "--batch-size", "4", "--max-steps", str(steps), "--warmup-steps", "4",
        "--eval-every", "1000", "--save-every", "3", "--samples", "0", "--threads", "1", "--no-progress",
        "--lr", "3e-3",
    ]


def step_losses(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir) if "loss" in r and "val_loss" not in r]


# ---------------------------------------------------------------------------- shards and loader
def test_prepare_writes_shards_that_decode_back(shards, small_tokenizer):
    data = PreparedData(shards[0])
    train, val = data.split("train"), data.split("val")
    assert data.dtype == np.uint16
    assert data.manifest["splits"]["val"]["documents"] == 40  # every 10th of 400 documents
    eos = small_tokenizer.eos_token_id
    tokens = np.concatenate(train.arrays)
    assert int((tokens == eos).sum()) == 360  # one separator per document
    first_doc = tokens[: int(np.argmax(tokens == eos))]
    assert small_tokenizer.decode(first_doc.tolist()).endswith(".")
    assert val.tokens > 0 and train.tokens > 10 * val.tokens // 2


def test_token_dtype_is_uint16_while_the_vocabulary_fits_else_uint32(tmp_path):
    from llmlab.data.shards import ShardWriter, token_dtype

    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.uint32
    writer = ShardWriter(tmp_path, "train", token_dtype(100_000))
    writer.add_document([99_999, 70_000, 0], n_bytes=3)
    info = writer.close()
    assert np.fromfile(tmp_path / info["shards"][0]["file"], dtype=np.uint32).tolist() == [99_999, 70_000, 0]


def test_windows_stay_inside_shards_and_cover_the_split(tmp_path, small_tokenizer):
    corpus = synthetic_corpus(tmp_path / "c.jsonl", n_docs=300)
    prepare([str(corpus)], tmp_path / "d", small_tokenizer, shard_tokens=1000, progress=False)
    split = PreparedData(tmp_path / "d").split("train")
    assert len(split.arrays) > 3  # several shards
    seq = 16
    loader = WindowLoader(split, seq, batch_size=5, seed=3)
    n = loader.windows_per_epoch
    assert n == sum((len(a) - 1) // seq for a in split.arrays)
    seen = loader.window_ids(np.arange(n, dtype=np.int64))
    assert sorted(seen.tolist()) == list(range(n))  # one epoch visits every window exactly once
    for w in seen[:50]:
        shard, start = loader.index.shard[w], loader.index.start[w]
        assert start + seq + 1 <= len(split.arrays[shard])  # never runs past its shard
    batch = next(loader)
    assert batch["input_ids"].shape == (5, seq)
    # targets are the inputs shifted by one, taken from the same contiguous slice
    w0 = loader.window_ids(np.array([0]))[0]
    raw = split.arrays[loader.index.shard[w0]][loader.index.start[w0]:][: seq + 1]
    assert batch["input_ids"][0].tolist() == raw[:-1].tolist()
    assert batch["targets"][0].tolist() == raw[1:].tolist()


def test_loader_resumes_exactly_and_ranks_split_the_global_batch(shards):
    split = PreparedData(shards[0]).split("train")
    full = WindowLoader(split, 16, 4, seed=1)
    batches = [next(full) for _ in range(6)]
    resumed = WindowLoader(split, 16, 4, seed=1)
    for _ in range(3):
        next(resumed)
    again = WindowLoader(split, 16, 4, seed=1)
    again.load_state_dict(resumed.state_dict())
    for expected in batches[3:]:
        assert torch.equal(next(again)["input_ids"], expected["input_ids"])
    # Two ranks of batch 2 together see what one process of batch 4 sees.
    r0 = WindowLoader(split, 16, 2, seed=1, rank=0, world_size=2)
    r1 = WindowLoader(split, 16, 2, seed=1, rank=1, world_size=2)
    one = WindowLoader(split, 16, 4, seed=1)
    for _ in range(3):
        both = torch.cat([next(r0)["input_ids"], next(r1)["input_ids"]])
        assert torch.equal(both, next(one)["input_ids"])


def test_eval_windows_are_fixed(shards):
    split = PreparedData(shards[0]).split("val")
    a = [b["input_ids"] for b in eval_batches(split, 16, 4, max_windows=10)]
    b = [b["input_ids"] for b in eval_batches(split, 16, 4, max_windows=10)]
    assert sum(len(x) for x in a) == min(10, (split.tokens - 1) // 16)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_single_document_corpus_still_gets_a_validation_split(tmp_path, small_tokenizer):
    (tmp_path / "book.txt").write_text("The quick brown fox jumps over the lazy dog. " * 200)
    manifest = prepare([str(tmp_path / "book.txt")], tmp_path / "d", small_tokenizer, progress=False)
    assert manifest["splits"]["val"]["tokens"] > 0
    assert manifest["splits"]["train"]["tokens"] > manifest["splits"]["val"]["tokens"]


# ---------------------------------------------------------------------------- bad input
def test_bad_inputs_give_clear_errors(tmp_path, small_tokenizer):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        prepare([str(empty)], tmp_path / "o1", small_tokenizer, progress=False)
    (tmp_path / "nodocs").mkdir()
    (tmp_path / "nodocs" / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(DataError, match="no text files"):
        prepare([str(tmp_path / "nodocs")], tmp_path / "o2", small_tokenizer, progress=False)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8.*offset 3"):
        prepare([str(latin1)], tmp_path / "o3", small_tokenizer, progress=False)
    prepare([str(latin1)], tmp_path / "o4", small_tokenizer, encoding_errors="replace", progress=False)
    with pytest.raises(DataError, match="not found"):
        prepare([str(tmp_path / "missing.txt")], tmp_path / "o5", small_tokenizer, progress=False)
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "ok"}\n{"txt": "no field"}\n')
    with pytest.raises(DataError, match="bad.jsonl:2"):
        prepare([str(bad_json)], tmp_path / "o6", small_tokenizer, progress=False)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o6").exists()  # nothing half-written


def test_cli_errors_are_one_line(shards, tmp_path, capsys):
    from llmlab.cli.main import main

    data, model_config = shards
    wrong_vocab = tmp_path / "m.json"
    wrong_vocab.write_text(json.dumps({**SMALL_MODEL, "vocab_size": 100}))
    cases = [
        (["pretrain", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r"), "--max-steps", "1"], "not found"),
        (["pretrain", "--data", str(data), "--out", str(tmp_path / "r"), "--preset", "huge", "--max-steps", "1"], "unknown preset"),
        (["pretrain", "--data", str(data), "--out", str(tmp_path / "r")], "budget"),
        (["pretrain", "--data", str(data), "--out", str(tmp_path / "r"), "--max-steps", "1",
          "--model-config", str(wrong_vocab)], "do not match"),
        (["data", "prepare", "--input", str(tmp_path / "none.txt"), "--train-tokenizer", "--out", str(tmp_path / "x")], "not found"),
    ]
    for args, message in cases:
        code = main(args)
        err = capsys.readouterr().err
        assert code != 0
        assert err.startswith("error:") and message in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------- training
def _trainer(shards, out: Path, steps: int, objective=None, **overrides):
    from llmlab.config import preset
    from llmlab.model import TransformerLM
    from llmlab.train.objectives import NextTokenLoss
    from llmlab.train.trainer import Trainer

    data = PreparedData(shards[0])
    torch.manual_seed(0)
    model = TransformerLM(preset("tiny", vocab_size=data.vocab_size, **SMALL_MODEL))
    settings = dict(data=str(shards[0]), out=str(out), max_steps=steps, warmup_steps=2, eval_every=1000,
                    save_every=1000, samples=0, progress=False)
    cfg = TrainConfig(**{**settings, **overrides})
    loader = WindowLoader(data.split("train"), 32, 4, seed=0)
    return Trainer(model, objective or NextTokenLoss(), loader, cfg, device=torch.device("cpu"), log=lambda *_: None)


def test_model_overfits_one_batch(shards, tmp_path, torch_threads):
    data = PreparedData(shards[0])
    loader = WindowLoader(data.split("train"), 32, 4, seed=0)
    fixed = next(loader)

    class OneBatch:
        seq_len = 32

        def __next__(self):
            return fixed

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    trainer = _trainer(shards, tmp_path, steps=150, lr=1e-2, warmup_steps=5)
    trainer.batches = OneBatch()
    trainer.plan(128)
    trainer.train()
    losses = [r["loss"] for r in read_metrics(tmp_path) if "loss" in r]
    assert losses[0] > 4.0
    assert losses[-1] < 0.1  # memorised


def test_non_finite_loss_is_skipped_and_repeats_stop_the_run(shards, tmp_path, torch_threads):
    from llmlab.train.objectives import NextTokenLoss
    from llmlab.train.trainer import TrainingError

    class Poisoned(NextTokenLoss):
        def __init__(self, bad_steps):
            self.calls, self.bad_steps = 0, bad_steps

        def __call__(self, model, batch):
            self.calls += 1
            loss, metrics = super().__call__(model, batch)
            return (loss * float("nan") if self.calls in self.bad_steps else loss), metrics

    trainer = _trainer(shards, tmp_path / "a", steps=8, objective=Poisoned({3}))
    trainer.plan(128)
    before = {k: v.clone() for k, v in trainer.raw_model.state_dict().items()}
    trainer.train()
    records = read_metrics(tmp_path / "a")
    skipped = [r for r in records if "skipped" in r]
    assert [r["step"] for r in skipped] == [3] and "non-finite" in skipped[0]["skipped"]
    assert all(torch.isfinite(v).all() for v in trainer.raw_model.state_dict().values())
    assert any(not torch.equal(before[k], v) for k, v in trainer.raw_model.state_dict().items())

    stopper = _trainer(shards, tmp_path / "b", steps=20, objective=Poisoned(set(range(5, 30))), max_bad_steps=3)
    stopper.plan(128)
    with pytest.raises(TrainingError, match="3 bad updates in a row"):
        stopper.train()


def test_gradient_spike_is_skipped(shards, tmp_path, torch_threads):
    from llmlab.train.objectives import NextTokenLoss

    class Spike(NextTokenLoss):
        calls = 0

        def __call__(self, model, batch):
            self.calls += 1
            loss, metrics = super().__call__(model, batch)
            return (loss * 1e4 if self.calls == 16 else loss), metrics

    trainer = _trainer(shards, tmp_path, steps=18, objective=Spike(), spike_factor=10.0)
    trainer.plan(128)
    trainer.train()
    skipped = [r for r in read_metrics(tmp_path) if "skipped" in r]
    assert [r["step"] for r in skipped] == [16] and "median" in skipped[0]["skipped"]


class _Troubled:
    """NextTokenLoss with a non-finite loss at call `nan_at` and a 10^4 times larger one at `spike_at`."""

    def __init__(self, nan_at: int, spike_at: int):
        from llmlab.train.objectives import NextTokenLoss

        self.inner, self.calls, self.nan_at, self.spike_at = NextTokenLoss(), 0, nan_at, spike_at

    def __call__(self, model, batch):
        self.calls += 1
        loss, metrics = self.inner(model, batch)
        factor = float("nan") if self.calls == self.nan_at else 1e4 if self.calls == self.spike_at else 1.0
        return loss * factor, {"doubled": loss.detach() * 2}

    def weight(self, batch):
        return self.inner.weight(batch)


def _skip_on_device(trainer):
    """Swap in the fused AdamW (on the CPU too), whose kernel skips an update on a device-side flag."""
    from llmlab.train.optim import parameter_groups

    cfg = trainer.cfg
    trainer.optimizer = torch.optim.AdamW(parameter_groups(trainer.raw_model, cfg.weight_decay), lr=cfg.lr,
                                          betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=True)
    assert trainer.skips_on_device
    return trainer


def test_bad_updates_are_skipped_on_the_device_without_a_host_read(shards, tmp_path, torch_threads):
    trainer = _skip_on_device(_trainer(shards, tmp_path, steps=10, objective=_Troubled(nan_at=3, spike_at=99)))
    trainer.plan(128)
    reads = []
    read = trainer._read
    trainer._read = lambda pending: (reads.append(len(pending)), read(pending))[1]
    params = lambda: [p.detach().clone() for p in trainer.raw_model.parameters()]  # noqa: E731
    pending = [trainer._step(), trainer._step()]
    before = params()
    pending.append(trainer._step())  # its loss is NaN: the kernel must leave everything as it was
    assert all(torch.equal(a, b) for a, b in zip(before, params()))
    assert all(float(s["step"]) == 2 for s in trainer.optimizer.state.values())
    pending.append(trainer._step())
    assert not all(torch.equal(a, b) for a, b in zip(before, params()))
    assert reads == [] and all(p.host is None for p in pending)  # four steps, nothing read yet
    trainer._pending = pending
    trainer._flush()
    assert reads == [4]  # one read for the four
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [1, 2, 3, 4] and "non-finite loss" in records[2]["skipped"]
    assert records[0]["doubled"] == pytest.approx(2 * records[0]["loss"])
    assert trainer.state.skipped == 1 and trainer.state.bad_in_a_row == 0


def test_reading_once_per_log_interval_writes_what_reading_every_step_does(shards, tmp_path, torch_threads):
    """The same run with the skip decided on the host (read every step) and on the device (read
    every 4 steps): the same lines (log steps and skipped ones), the same skip reasons, close values."""
    runs = {}
    for name in ("host", "device"):
        trainer = _trainer(shards, tmp_path / name, steps=24, log_every=4, objective=_Troubled(nan_at=5, spike_at=19))
        if name == "device":
            _skip_on_device(trainer)
        reads = []  # how many steps each device read brought to the host
        read = trainer._read
        trainer._read = lambda pending, read=read, reads=reads: (
            reads.append(sum(p.host is None for p in pending)), read(pending))[1]
        trainer.plan(128)
        trainer.train()
        runs[name] = (read_metrics(tmp_path / name), [n for n in reads if n], trainer.norms.to_list())
    (host, host_reads, host_norms), (device, device_reads, device_norms) = runs["host"], runs["device"]
    assert [r["step"] for r in host] == [r["step"] for r in device] == [4, 5, 8, 12, 16, 19, 20, 24]
    assert [r.get("skipped", "")[:20] for r in host] == [r.get("skipped", "")[:20] for r in device]
    assert "non-finite loss" in host[1]["skipped"] and "median" in host[5]["skipped"]
    assert [list(r) for r in host] == [list(r) for r in device]  # the same keys, in the same order
    for a, b in zip(host, device):
        if "skipped" not in a:
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-3) and a["doubled"] == pytest.approx(2 * a["loss"])
    assert host_reads == [1] * 24 and device_reads == [4] * 6  # every step, or once per log interval
    assert len(host_norms) == len(device_norms) == 22  # the two skipped norms are not kept


def test_norm_history_median_and_order_match_a_deque():
    import statistics
    from collections import deque

    from llmlab.train.trainer import NormHistory

    history, ref = NormHistory(torch.device("cpu"), torch.float64, size=7), deque(maxlen=7)
    rng = random.Random(0)
    for i in range(30):
        norm, accept = rng.uniform(0.1, 5.0), rng.random() < 0.8
        history.push(torch.tensor(norm, dtype=torch.float32), torch.tensor(accept))
        if accept:
            ref.append(float(torch.tensor(norm, dtype=torch.float32)))
        assert history.to_list() == list(ref)
        if ref:
            assert float(history.median()) == statistics.median(ref)
    again = NormHistory(torch.device("cpu"), torch.float64, size=7)
    again.load(list(ref))
    assert again.to_list() == list(ref) and float(again.median()) == statistics.median(ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_steps_on_a_gpu_make_no_host_sync(shards, tmp_path):
    from llmlab.config import preset
    from llmlab.model import TransformerLM
    from llmlab.train.objectives import NextTokenLoss
    from llmlab.train.trainer import Trainer

    data = PreparedData(shards[0])
    device = torch.device("cuda")
    model = TransformerLM(preset("tiny", vocab_size=data.vocab_size, **SMALL_MODEL)).to(device)
    cfg = TrainConfig(data=str(shards[0]), out=str(tmp_path), max_steps=20, log_every=10, progress=False,
                      precision="bf16")
    loader = WindowLoader(data.split("train"), 32, 4, seed=0, pin_memory=True)
    trainer = Trainer(model, NextTokenLoss(), loader, cfg, device=device, log=lambda *_: None)
    trainer.plan(128)
    assert trainer.skips_on_device and loader.gather(np.arange(2))["input_ids"].is_pinned()
    trainer._step()  # first steps allocate optimizer state and warm the caches
    torch.cuda.set_sync_debug_mode("error")
    try:
        trainer._pending = [trainer._step() for _ in range(3)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    trainer._flush()


def test_schedules():
    from llmlab.train.optim import lr_at

    kw = dict(max_lr=1.0, total_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, **kw) == pytest.approx(0.1) and lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(10, **kw) == pytest.approx(1.0) and lr_at(100, **kw) == pytest.approx(0.1)
    assert lr_at(55, **kw) == pytest.approx(0.55)  # the cosine's midpoint
    wsd = dict(kw, schedule="wsd", decay_fraction=0.2)
    assert lr_at(79, **wsd) == 1.0 and lr_at(99, **wsd) == pytest.approx(0.1)
    assert 0.1 < lr_at(90, **wsd) < 1.0


def test_no_weight_decay_on_norms_biases_embeddings():
    from llmlab.config import preset
    from llmlab.model import TransformerLM
    from llmlab.train.optim import parameter_groups

    model = TransformerLM(preset("gpt2-12m", n_layer=1, d_model=64, n_head=2))
    decay, no_decay = parameter_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.dim() == 2 for p in decay["params"])
    assert {names[id(p)] for p in decay["params"]} == {
        "blocks.0.attn.qkv.weight", "blocks.0.attn.out.weight", "blocks.0.mlp.up.weight", "blocks.0.mlp.down.weight"}
    assert "embed.weight" in {names[id(p)] for p in no_decay["params"]}
    assert no_decay["weight_decay"] == 0.0


@pytest.mark.slow
def test_resume_after_sigkill_reproduces_the_uninterrupted_losses(shards, tmp_path):
    data, model_config = shards
    steps = 24
    straight = run_cli(train_args(data, model_config, tmp_path / "straight", steps))
    assert straight.returncode == 0, straight.stderr
    expected = step_losses(tmp_path / "straight")
    assert [s for s, _ in expected] == list(range(1, steps + 1))

    run = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for kill_after in (7, 16):  # two kills at different points, the second on a resumed run
        args = train_args(data, model_config, run, steps) + (["--resume"] if (run / "checkpoint").exists() else [])
        proc = subprocess.Popen([sys.executable, "-m", "llmlab.cli.main", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            done = step_losses(run)
            if done and done[-1][0] >= kill_after:
                time.sleep(random.Random(kill_after).uniform(0, 0.3))  # land anywhere in a step or a save
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    resumed = run_cli(train_args(data, model_config, run, steps) + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert step_losses(run) == expected  # bit-for-bit the same per-step losses


@pytest.mark.slow
def test_two_process_torchrun_matches_one_process(shards, tmp_path):
    data, model_config = shards
    common = ["--seq-len", "32", "--max-steps", "6", "--eval-every", "1000", "--save-every", "1000",
              "--samples", "0", "--threads", "1", "--no-progress", "--data", str(data), "--model-config", str(model_config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = run_cli(["pretrain", *common, "--batch-size", "2", "--global-batch-tokens", "128", "--out", str(tmp_path / "one")])
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "llmlab.cli.main", "pretrain", *common, "--batch-size", "2", "--out", str(tmp_path / "two"), "--json"],
        capture_output=True, text=True, env=env,
    )
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert len(ddp.stdout.strip().splitlines()) == 1 and "val_loss" in json.loads(ddp.stdout)  # rank 0 only
    one, two = step_losses(tmp_path / "one"), step_losses(tmp_path / "two")
    assert len(one) == len(two) == 6
    for (s1, l1), (s2, l2) in zip(one, two):
        assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-4)
    assert read_metrics(tmp_path / "two")[-1]["tokens"] == 6 * 128


def test_existing_run_is_not_overwritten_without_resume(shards, tmp_path):
    data, model_config = shards
    first = run_cli(train_args(data, model_config, tmp_path / "r", steps=3))
    assert first.returncode == 0, first.stderr
    again = run_cli(train_args(data, model_config, tmp_path / "r", steps=3))
    assert again.returncode == 1 and "--resume" in again.stderr
    with pytest.raises(ConfigError):
        TrainConfig(data="d", out="o").validate()


def test_sources_text_jsonl_parquet_dirs_and_globs(tmp_path, small_tokenizer):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmlab.data.sources import iter_documents, resolve_sources

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("First file.")
    (tmp_path / "docs" / "nested").mkdir()
    (tmp_path / "docs" / "nested" / "b.md").write_text("Second file.")
    (tmp_path / "c.jsonl").write_text(json.dumps({"body": "From JSONL."}) + "\n\n")
    pq.write_table(pa.table({"body": ["Row one.", "Row two."]}), tmp_path / "d.parquet")
    assert list(iter_documents(resolve_sources([str(tmp_path / "docs")]))) == ["First file.", "Second file."]
    assert list(iter_documents(resolve_sources([str(tmp_path / "docs" / "*.txt")]))) == ["First file."]
    mixed = resolve_sources([str(tmp_path / "c.jsonl"), str(tmp_path / "d.parquet")])
    assert list(iter_documents(mixed, field="body")) == ["From JSONL.", "Row one.", "Row two."]
    with pytest.raises(DataError, match="no column 'text'"):
        list(iter_documents(resolve_sources([str(tmp_path / "d.parquet")])))
    manifest = prepare([str(tmp_path / "d.parquet"), str(tmp_path / "c.jsonl")], tmp_path / "out", small_tokenizer,
                       field="body", progress=False)
    assert manifest["splits"]["train"]["documents"] + manifest["splits"]["val"]["documents"] == 3


def test_pretrain_from_a_yaml_config_saves_the_resolved_settings(shards, tmp_path):
    import yaml

    data, model_config = shards
    settings = {"data": str(data), "model_config": str(model_config), "seq_len": 32, "batch_size": 2,
                "max_steps": 3, "lr": 1e-3, "samples": 0, "threads": 1, "progress": False, "eval_every": 1000}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(settings))
    out = tmp_path / "run"
    proc = run_cli(["pretrain", "--config", str(tmp_path / "run.yaml"), "--out", str(out), "--lr", "2e-3", "--json"])
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) >= {"val_loss", "val_bpb", "tokens", "seconds", "checkpoint"}
    assert result["tokens"] == 3 * 2 * 32
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["lr"] == 2e-3 and saved["batch_size"] == 2 and saved["out"] == str(out)  # the flag wins
    assert [r["lr"] for r in read_metrics(out) if "lr" in r][0] < 2e-3  # warmup starts below the peak


def test_saved_hf_dataset_folders_are_read_not_listed(tmp_path, monkeypatch):
    """A `save_to_disk` folder is one source: a Dataset (state.json, ...) or a DatasetDict
    (dataset_dict.json + one folder per split), whose metadata .json files are not JSONL text."""
    import types

    from llmlab.data.sources import iter_documents, resolve_sources
    from llmlab.errors import DataError

    class FakeDataset:
        column_names = ("text",)

        def __init__(self, rows):
            self.rows = rows

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, key):  # ds[a:b] is a dict of columns, as in `datasets`
            return {"text": self.rows[key]} if isinstance(key, slice) else self.rows

    class FakeDatasetDict(dict):
        pass

    saved = {"plain": FakeDataset(["One.", "Two."]),
             "dict": FakeDatasetDict(test=FakeDataset(["Held out."]), train=FakeDataset(["Train doc."]))}
    fake = types.SimpleNamespace(DatasetDict=FakeDatasetDict, load_from_disk=lambda path: saved[Path(path).name])
    monkeypatch.setitem(sys.modules, "datasets", fake)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "state.json").write_text('{\n  "_data_files": []\n}\n')
    for split in ("train", "test"):
        (tmp_path / "dict" / split).mkdir(parents=True)
        (tmp_path / "dict" / split / "dataset_info.json").write_text('{\n  "citation": ""\n}\n')
    (tmp_path / "dict" / "dataset_dict.json").write_text('{"splits": ["train", "test"]}')
    sources = resolve_sources([str(tmp_path / "plain"), str(tmp_path / "dict")])
    assert [s.kind for s in sources] == ["hf_disk", "hf_disk"]
    assert list(iter_documents(sources)) == ["One.", "Two.", "Train doc."]
    # DIR:split reads one split, e.g. the dataset's own held-out data for --val.
    held_out = resolve_sources([f"{tmp_path / 'dict'}:test"])
    assert held_out[0].split == "test" and list(iter_documents(held_out)) == ["Held out."]
    with pytest.raises(DataError, match="has no split 'validation'"):
        list(iter_documents(resolve_sources([f"{tmp_path / 'dict'}:validation"])))
    with pytest.raises(DataError, match="not a DatasetDict"):
        list(iter_documents(resolve_sources([f"{tmp_path / 'plain'}:train"])))


def test_init_from_a_checkpoint_with_another_tokenizer_is_refused(shards, tmp_path, capsys, small_tokenizer):
    from llmlab.checkpoint import save_checkpoint
    from llmlab.cli.main import main
    from llmlab.config import preset
    from llmlab.model import TransformerLM
    from llmlab.tokenizer import Tokenizer

    data = shards[0]
    model = TransformerLM(preset("tiny", vocab_size=PreparedData(data).vocab_size, **SMALL_MODEL))
    same = save_checkpoint(tmp_path / "same", model, small_tokenizer)
    # Same size, other tokens: two entries of the vocabulary trade ids.
    spec = json.loads((same / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    a, b = [t for t, i in vocab.items() if i in (300, 301)]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (tmp_path / "other_tok").mkdir()
    (tmp_path / "other_tok" / "tokenizer.json").write_text(json.dumps(spec))
    other_tok = Tokenizer.from_pretrained(tmp_path / "other_tok")
    assert other_tok.vocab_size == small_tokenizer.vocab_size
    other = save_checkpoint(tmp_path / "other", model, other_tok)
    args = ["pretrain", "--seq-len", "32", "--batch-size", "2", "--max-steps", "1", "--samples", "0", "--no-progress",
            "--threads", "1"]
    assert main(args + ["--data", str(data), "--init-from", str(other), "--out", str(tmp_path / "r1")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the data was tokenised with a different tokenizer") and len(err.splitlines()) == 1
    assert main(args + ["--data", str(data), "--init-from", str(same), "--out", str(tmp_path / "r2")]) == 0
    # Resuming that run on data made with the other tokenizer is refused the same way.
    corpus = synthetic_corpus(tmp_path / "c.jsonl", n_docs=100)
    prepare([str(corpus)], tmp_path / "other_data", other_tok, val_fraction=0.1, progress=False)
    capsys.readouterr()
    assert main(args + ["--data", str(tmp_path / "other_data"), "--out", str(tmp_path / "r2"), "--resume",
                        "--max-steps", "2"]) == 1
    assert "different tokenizer" in capsys.readouterr().err


def test_token_budgets_accept_20M_on_the_command_line_and_in_config_files():
    import click

    from llmlab.cli.cmd_pretrain import command

    ctx = command.make_context("pretrain", ["--data", "d", "--out", "o", "--max-tokens", "20M",
                                            "--global-batch-tokens", "64k"])
    assert ctx.params["max_tokens"] == 20_000_000 and ctx.params["global_batch_tokens"] == 64_000
    assert command.make_context("pretrain", ["--max-tokens", "5000000"]).params["max_tokens"] == 5_000_000
    with pytest.raises(click.BadParameter, match="invalid token count 'lots'"):
        command.make_context("pretrain", ["--max-tokens", "lots"])
    assert TrainConfig.from_dict({"data": "d", "out": "o", "max_tokens": "2.5M"}).max_tokens == 2_500_000


def test_resuming_with_another_model_is_refused_not_silently_ignored(shards, tmp_path, capsys):
    from llmlab.cli.main import main

    data, model_config = shards
    out = tmp_path / "r"
    assert main(train_args(data, model_config, out, steps=2)) == 0
    bigger = tmp_path / "bigger.json"
    bigger.write_text(json.dumps({**SMALL_MODEL, "n_layer": 3}))
    capsys.readouterr()
    args = train_args(data, bigger, out, steps=4) + ["--resume"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "holds a run of another model (n_layer 2 (asked: 3))" in err and "another --out" in err, err
    assert main(train_args(data, model_config, out, steps=3) + ["--resume"]) == 0  # the same model continues
