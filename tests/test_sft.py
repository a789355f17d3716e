"""SFT data and training: completion-only masks (EOS included), packing without leakage, padding
side, record formats and their errors, and a fine-tuning run end to end.

TRL's three most reported bugs are tested by name: `test_eos_*` (masking the end-of-turn token),
`test_packing_*` (leakage across packed examples), `test_padding_side_*`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

from llmlab.config import preset
from llmlab.data.formats import (
    alpaca_prompt, load_preferences, load_prompts, load_sft, parse_preference_record, parse_sft_record,
)
from llmlab.data.sft import (
    IGNORE_INDEX, ShuffledBatches, collate_packed, collate_padded, pack_examples, packed_attention_mask,
    sft_batches, tokenize_all, tokenize_preferences, tokenize_sft,
)
from llmlab.errors import DataError
from llmlab.model import TransformerLM
from llmlab.train.sft import per_example_losses

CHAT = {"messages": [
    {"role": "system", "content": "You are kind."},
    {"role": "user", "content": "What is the name of Mia's dog?"},
    {"role": "assistant", "content": "Mia's dog is called Rex."},
    {"role": "user", "content": "And what does Tom do?"},
    {"role": "assistant", "content": "Tom works as a baker."},
]}


def trained_text(tok, ex) -> list[str]:
    """The trained tokens, decoded run by run (contiguous trained tokens joined)."""
    runs, current = [], []
    for i, keep in zip(ex.input_ids, ex.trained):
        if keep:
            current.append(i)
        elif current:
            runs.append(tok.decode(current))
            current = []
    if current:
        runs.append(tok.decode(current))
    return runs


# ---------------------------------------------------------------------------- completion-only masks
def test_completion_mask_covers_exactly_the_assistant_tokens_plus_end_of_turn(small_tokenizer):
    ex = tokenize_sft(parse_sft_record(CHAT, "chat line 1"), "chatml", small_tokenizer, 256)
    assert trained_text(small_tokenizer, ex) == ["Mia's dog is called Rex.<|im_end|>",
                                                 "Tom works as a baker.<|im_end|>"]
    # Nothing else is trained: not the system/user turns, not the "assistant\n" headers, not the
    # newline after <|im_end|>.
    whole = small_tokenizer.decode(ex.input_ids)
    assert whole == small_tokenizer.apply_chat_template(CHAT["messages"])
    answers = [m["content"] for m in CHAT["messages"] if m["role"] == "assistant"]
    n_assistant = sum(len(small_tokenizer.encode(a)) + 1 for a in answers)  # + <|im_end|>
    assert ex.num_targets == n_assistant


def test_fast_chatml_rendering_equals_the_jinja_template(small_tokenizer):
    from llmlab.data.sft import _chatml

    for k in range(len(CHAT["messages"]) + 1):
        for gen in (False, True):
            assert _chatml(CHAT["messages"][:k], gen) == small_tokenizer.apply_chat_template(
                CHAT["messages"][:k], add_generation_prompt=gen)


def test_eos_is_a_target_in_the_plain_template_and_in_the_shifted_labels(small_tokenizer):
    rec = {"instruction": "Name the dog.", "input": "Mia has a dog called Rex.", "output": "Rex"}
    ex = tokenize_sft(parse_sft_record(rec, "r"), "plain", small_tokenizer, 256)
    assert small_tokenizer.decode(ex.input_ids).startswith(alpaca_prompt(rec["instruction"], rec["input"]))
    assert trained_text(small_tokenizer, ex) == [" Rex<|endoftext|>"]
    inputs, targets = ex.shifted()
    eos = small_tokenizer.eos_token_id
    assert targets[-1] == eos and inputs[-1] != eos  # the model learns to emit EOS after "Rex"


def test_eos_survives_padding_when_pad_equals_eos(small_tokenizer):
    """GPT-2-style tokenizers pad with EOS; a mask derived from ids != pad would drop every EOS."""
    eos = small_tokenizer.eos_token_id
    rows = [tokenize_sft(parse_sft_record({"prompt": "Q: hi?\nA:", "completion": " " + a}, "r"), "plain",
                         small_tokenizer, 64) for a in ("yes", "no it is not")]
    batch = collate_padded(rows, pad_id=eos)
    for i, ex in enumerate(rows):
        n = len(ex) - 1
        assert int(batch["targets"][i, n - 1]) == eos  # the last real target is EOS ...
        assert bool((batch["targets"][i, n:] == IGNORE_INDEX).all())  # ... and padding is ignored by label
    assert int((batch["targets"] == eos).sum()) == 2


def test_no_completion_means_a_clear_error(small_tokenizer):
    with pytest.raises(DataError, match="x line 3: empty completion"):
        parse_sft_record({"prompt": "Say something", "completion": "  "}, "x line 3")
    with pytest.raises(DataError, match="x line 4: empty completion"):
        parse_sft_record({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]},
                         "x line 4")
    with pytest.raises(DataError, match="x line 5: the conversation has no assistant turn"):
        parse_sft_record({"messages": [{"role": "user", "content": "hi"}]}, "x line 5")


def test_a_prompt_longer_than_the_context_names_the_record(small_tokenizer, tmp_path):
    path = tmp_path / "long.jsonl"
    long_prompt = "Tom lives in Pinebrook. " * 40
    path.write_text(json.dumps({"prompt": "short", "completion": " ok"}) + "\n"
                    + json.dumps({"prompt": long_prompt, "completion": " ok"}) + "\n")
    examples = load_sft(path)
    with pytest.raises(DataError, match=r"long.jsonl:2: the prompt has \d+ tokens, more than the context of 64"):
        tokenize_all(examples, "plain", small_tokenizer, 64)
    kept, skipped = tokenize_all(examples, "plain", small_tokenizer, 64, skip_long=True)
    assert (len(kept), skipped) == (1, 1)


def test_completion_that_overflows_the_context_is_reported_with_both_lengths(small_tokenizer):
    ex = parse_sft_record({"prompt": "Q:", "completion": " Rex ran." * 30}, "big.jsonl line 9")
    with pytest.raises(DataError, match=r"big.jsonl line 9: \d+ tokens \(prompt \d+ \+ completion \d+\) do not fit"):
        tokenize_sft(ex, "plain", small_tokenizer, 32)


# ---------------------------------------------------------------------------- formats
def test_trl_formats_parse(small_tokenizer, tmp_path):
    conv = parse_sft_record({"prompt": [{"role": "user", "content": "Hi"}],
                             "completion": [{"role": "assistant", "content": "Hello!"}]}, "r")
    assert conv.train_from == 1 and conv.messages[-1]["content"] == "Hello!"
    ex = tokenize_sft(conv, "chatml", small_tokenizer, 64)
    assert trained_text(small_tokenizer, ex) == ["Hello!<|im_end|>"]

    implicit = parse_preference_record({
        "chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}],
    }, "r")
    assert implicit.prompt == [{"role": "user", "content": "Hi"}]
    assert implicit.chosen == [{"role": "assistant", "content": "Hello!"}]
    pairs, _ = tokenize_preferences([implicit], "chatml", small_tokenizer, 64)
    assert trained_text(small_tokenizer, pairs[0].rejected) == ["Go away.<|im_end|>"]

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "Once upon a time"}, {"messages": CHAT["messages"][:3]}, {"instruction": "Tell a story."}]))
    loaded = load_prompts(prompts)
    assert loaded[0].prompt == "Once upon a time"
    assert loaded[1].prompt[-1]["role"] == "user"  # the trailing assistant answer is not part of the prompt
    assert loaded[2].prompt == [{"role": "user", "content": "Tell a story."}]


def test_a_preference_record_missing_chosen_names_file_and_line(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n\n"
                    + json.dumps({"prompt": "p", "rejected": "b"}) + "\n")
    with pytest.raises(DataError, match="^" + re.escape(f"{path}:3: preference record is missing 'chosen'") + "$"):
        load_preferences(path)


@pytest.mark.parametrize("line,message", [
    # JSON errors keep their position: FILE:LINE, and the column inside the line.
    ("{not json", re.escape("bad.jsonl:1: invalid JSON (Expecting property name enclosed in double quotes at "
                            "column 2)")),
    ('{"prompt": "a\ttab", "completion": "x"}',
     re.escape("bad.jsonl:1: invalid JSON (Invalid control character at column 14)")),
    ("[1, 2]", "bad.jsonl:1: expected a JSON object, got list"),
    ('{"text": "hello"}', "bad.jsonl:1: not an SFT record"),
    ('{"messages": [{"role": "robot", "content": "x"}]}', "role 'robot'"),
])
def test_malformed_sft_records_fail_with_the_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(DataError, match=message):
        load_sft(path)


# ---------------------------------------------------------------------------- packing
def examples_for_packing(tok, n=7):
    recs = [{"instruction": f"Did Mia see {i}?", "output": "Yes." * (1 + i % 3)} for i in range(n)]
    return [tokenize_sft(parse_sft_record(r, f"r{i}"), "plain", tok, 96) for i, r in enumerate(recs)]


def test_packing_fills_windows_with_whole_examples():
    from llmlab.data.sft import TokenizedExample

    # Input lengths (tokens - 1) 60, 50, 40, 30, 20, 10, 5, 5 into windows of 64, best fit decreasing:
    # 60 | 50 | 40 | 30, then 20 -> the 40's window (room 24), 10 -> the 50's (room 14), 5 and 5 -> the 30's.
    sizes = [5, 60, 20, 50, 5, 40, 10, 30]
    examples = [TokenizedExample(list(range(n + 1)), [True] * (n + 1)) for n in sizes]
    packs = pack_examples(examples, 64)
    assert sorted(sorted(sizes[i] for i in p) for p in packs) == [[5, 5, 30], [10, 50], [20, 40], [60]]
    with pytest.raises(DataError, match="do not fit a window"):
        pack_examples([TokenizedExample(list(range(70)), [True] * 70, "big line 1")], 64)


@pytest.mark.parametrize("style", ["tiny", "gpt2-12m"])  # RoPE and learned positions
def test_packing_gives_the_same_per_example_loss_as_unpacked(small_tokenizer, style, torch_threads):
    torch.manual_seed(0)
    cfg = preset(style, vocab_size=small_tokenizer.vocab_size, n_layer=2, d_model=64, n_head=4, context_length=160)
    model = TransformerLM(cfg).eval()
    examples = examples_for_packing(small_tokenizer, 4)
    pad = small_tokenizer.pad_token_id
    with torch.no_grad():
        packed = per_example_losses(model, collate_packed(examples, 160, pad))
        alone = [per_example_losses(model, collate_padded([e], pad))[0] for e in examples]
    assert len(packed) == 4
    assert torch.allclose(torch.tensor(packed), torch.tensor(alone), atol=1e-4), (packed, alone)


def test_packing_does_not_leak_between_examples(small_tokenizer, torch_threads):
    """Changing one packed example changes no other example's logits (attention and positions)."""
    torch.manual_seed(0)
    model = TransformerLM(preset("tiny", vocab_size=small_tokenizer.vocab_size, n_layer=2, d_model=64, n_head=4,
                                 context_length=160)).eval()
    examples = examples_for_packing(small_tokenizer, 3)
    batch = collate_packed(examples, 160, small_tokenizer.pad_token_id)
    changed = {k: v.clone() for k, v in batch.items()}
    first = changed["doc_ids"][0] == 0
    changed["input_ids"][0, first] = (changed["input_ids"][0, first] + 7) % small_tokenizer.vocab_size
    with torch.no_grad():
        a = model(batch["input_ids"], attention_mask=packed_attention_mask(batch["doc_ids"]),
                  position_ids=batch["position_ids"]).logits
        b = model(changed["input_ids"], attention_mask=packed_attention_mask(changed["doc_ids"]),
                  position_ids=changed["position_ids"]).logits
    others = batch["doc_ids"][0] >= 1
    assert not torch.allclose(a[0, first], b[0, first])
    assert torch.allclose(a[0, others], b[0, others], atol=1e-6)
    # positions restart at 0 for every example
    starts = [int(batch["position_ids"][0][batch["doc_ids"][0] == d][0]) for d in range(3)]
    assert starts == [0, 0, 0]


def test_padding_side_does_not_change_the_loss(small_tokenizer, torch_threads):
    torch.manual_seed(0)
    model = TransformerLM(preset("tiny", vocab_size=small_tokenizer.vocab_size, n_layer=2, d_model=64, n_head=4,
                                 context_length=96)).eval()
    examples = examples_for_packing(small_tokenizer, 4)
    pad = small_tokenizer.pad_token_id
    with torch.no_grad():
        right = per_example_losses(model, collate_padded(examples, pad, "right"))
        left = per_example_losses(model, collate_padded(examples, pad, "left"))
        alone = [per_example_losses(model, collate_padded([e], pad))[0] for e in examples]
    assert torch.allclose(torch.tensor(right), torch.tensor(alone), atol=1e-4)
    assert torch.allclose(torch.tensor(left), torch.tensor(alone), atol=1e-4)


# ---------------------------------------------------------------------------- batches
def test_batches_resume_exactly(small_tokenizer):
    examples = examples_for_packing(small_tokenizer, 9)
    a = sft_batches(examples, batch_size=2, seq_len=96, packing=False, pad_id=0, seed=3)
    seen = [next(a)["input_ids"] for _ in range(7)]
    b = sft_batches(examples, batch_size=2, seq_len=96, packing=False, pad_id=0, seed=3)
    for _ in range(4):
        next(b)
    c = sft_batches(examples, batch_size=2, seq_len=96, packing=False, pad_id=0, seed=3)
    c.load_state_dict(b.state_dict())
    assert all(torch.equal(next(c)["input_ids"], seen[i]) for i in range(4, 7))
    # Two ranks split each global batch, together covering what one process sees.
    r0 = ShuffledBatches(list(range(9)), 2, lambda u: {"u": torch.tensor(u)}, seed=3, rank=0, world_size=2)
    r1 = ShuffledBatches(list(range(9)), 2, lambda u: {"u": torch.tensor(u)}, seed=3, rank=1, world_size=2)
    one = ShuffledBatches(list(range(9)), 4, lambda u: {"u": torch.tensor(u)}, seed=3)
    assert torch.cat([next(r0)["u"], next(r1)["u"]]).tolist() == next(one)["u"].tolist()


# ---------------------------------------------------------------------------- training
def test_lesson_supervised_fine_tuning_learns_to_answer_and_stop(small_tokenizer, torch_threads):
    from llmlab.infer import Engine
    from llmlab.train.sft import supervised_fine_tuning

    torch.manual_seed(0)
    model = TransformerLM(preset("tiny", vocab_size=small_tokenizer.vocab_size, n_layer=2, d_model=64, n_head=4,
                                 context_length=64))
    data = [[{"instruction": f"What pet does {n} have?", "input": "", "output": f"{n} has a {p}."}
             for n, p in (("Mia", "dog"), ("Tom", "cat"), ("Sam", "bird"))]]  # the lesson passes batches
    supervised_fine_tuning(model, data, small_tokenizer, epochs=80, learning_rate=3e-3, out_dir="/tmp/unused-sft")
    engine = Engine(model, small_tokenizer)
    for name, pet in (("Tom", "cat"), ("Mia", "dog")):
        result = engine.generate(alpaca_prompt(f"What pet does {name} have?"), temperature=0, max_new_tokens=20)
        assert result.text == f" {name} has a {pet}."
        assert result.finish_reason == "stop" and result.token_ids[-1] == small_tokenizer.eos_token_id


def run_cli(args, cwd):
    import os

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "llmlab.cli.main", *args], capture_output=True, text=True, env=env,
                          cwd=cwd)


@pytest.mark.slow
def test_sft_cli_full_and_lora_end_to_end(finetune_checkpoint, tmp_path):
    import llmlab
    from llmlab.train.metrics_log import read_metrics

    data = tmp_path / "sft.jsonl"
    names = ["Mia", "Tom", "Sam", "Lily", "Ben"]
    data.write_text("\n".join(json.dumps({"messages": [
        {"role": "user", "content": f"Where does {n} live?"},
        {"role": "assistant", "content": f"{n} lives in Pinebrook."}]}) for n in names * 20) + "\n")
    common = ["--data", str(data), "--max-steps", "30", "--batch-size", "4", "--lr", "3e-3", "--eval-every", "15",
              "--threads", "1", "--json", "--samples", "0"]
    full = run_cli(["sft", "--model", str(finetune_checkpoint), "--out", str(tmp_path / "full"), *common], tmp_path)
    assert full.returncode == 0, full.stderr
    summary = json.loads(full.stdout)
    evals = [r["val_loss"] for r in read_metrics(tmp_path / "full") if "val_loss" in r]
    assert evals[-1] < evals[0] - 1.0 and summary["val_loss"] == pytest.approx(evals[-1])
    again = run_cli(["sft", "--model", str(finetune_checkpoint), "--out", str(tmp_path / "full"), *common], tmp_path)
    assert again.returncode == 1 and "already holds a run" in again.stderr

    # LoRA from the fine-tuned model: adapters train, then merge into a plain checkpoint.
    lora = run_cli(["sft", "--model", summary["checkpoint"], "--out", str(tmp_path / "lora"), "--lora-rank", "4",
                    "--lora-targets", "q,v,o", *common], tmp_path)
    assert lora.returncode == 0, lora.stderr
    ckpt = tmp_path / "lora" / "checkpoint"
    meta = json.loads((ckpt / "adapter_config.json").read_text())
    assert meta["merged"] and meta["rank"] == 4 and meta["targets"] == ["q", "v", "o"]
    model, tok = llmlab.load(ckpt)  # a plain checkpoint: no adapter weights in model.safetensors
    assert type(model.blocks[0].attn.qkv) is torch.nn.Linear
    resumed = run_cli(["sft", "--model", str(finetune_checkpoint), "--out", str(tmp_path / "lora"), "--resume",
                       "--lora-rank", "4", *common], tmp_path)
    assert resumed.returncode == 1 and "finished LoRA run" in resumed.stderr


@pytest.mark.slow
def test_sft_under_torchrun_prints_one_summary_from_rank_0(finetune_checkpoint, tmp_path):
    """Two processes (gloo on CPU) share the batches; only rank 0 logs and prints the JSON object."""
    import os

    data = tmp_path / "sft.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"Where does {n} live?", "completion": f" {n} lives in Pinebrook."})
                              for n in ["Mia", "Tom", "Sam", "Lily", "Ben"] * 8) + "\n")
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "llmlab.cli.main", "sft", "--model", str(finetune_checkpoint), "--data", str(data),
         "--out", str(tmp_path / "run"), "--max-steps", "3", "--batch-size", "2", "--eval-every", "1000",
         "--samples", "0", "--threads", "1", "--json"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1, run.stdout
    summary = json.loads(lines[0])
    assert summary["step"] == 3 and summary["checkpoint"].endswith("checkpoint") and "val_loss" in summary
    assert run.stderr.count("full fine-tuning:") == 1  # the log too, once
    from llmlab.train.metrics_log import read_metrics

    steps = [r for r in read_metrics(tmp_path / "run") if "loss" in r and "val_loss" not in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert steps[0]["tokens"] == 2 * 2 * 96  # both processes' packed windows (2 each, the context of 96)


@pytest.mark.parametrize("budget, expected", [
    ({}, 25),                                    # one epoch by default: 100 examples / 4 per step
    ({"epochs": 2.0}, 50),
    ({"epochs": 1.0, "max_steps": 7}, 7),        # both given: whichever is smaller
    ({"epochs": 0.2, "max_steps": 40}, 5),
])
def test_epochs_and_max_steps_budget_takes_the_smaller(budget, expected):
    from llmlab.train.finetune import plan_budget
    from llmlab.train.finetune_config import SFTConfig

    class Planner:
        def plan(self, tokens_per_step):
            self.tokens_per_step = tokens_per_step

    cfg = SFTConfig(model="m", data="d", out="o", **budget)
    cfg.validate()
    plan_budget(cfg, Planner(), units_per_epoch=100, units_per_step=4, tokens_per_step=512)
    assert cfg.max_steps == expected


def test_builtin_data_skips_what_does_not_fit_by_default_your_own_data_does_not(small_tokenizer, tmp_path, capsys):
    """tinyworld's SFT records run past a small context: `--data <tinyworld folder>` drops and counts
    them unasked; the same records as the user's own file stop with the --skip-long hint."""
    import shutil

    from llmlab.checkpoint import save_checkpoint
    from llmlab.cli.main import main
    from llmlab.data.tinyworld import generate_dataset
    from llmlab.train.finetune_config import SFTConfig

    torch.manual_seed(0)
    model = TransformerLM(preset("tiny", vocab_size=small_tokenizer.vocab_size, n_layer=1, d_model=32, n_head=2,
                                 n_kv_head=1, context_length=256))
    ckpt = save_checkpoint(tmp_path / "base", model, small_tokenizer)
    tw = tmp_path / "tw"
    generate_dataset(tw, tokens=2000, seed=0, progress=False, workers=1, sft_records=60, preference_records=20)
    common = ["--model", str(ckpt), "--max-steps", "1", "--batch-size", "2", "--samples", "0", "--threads", "1",
              "--json"]
    assert main(["sft", "--data", str(tw), "--out", str(tmp_path / "tw-run"), *common]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped_long"] > 0 and summary["examples"] > 0
    mine = tmp_path / "mine.jsonl"
    shutil.copy(tw / "sft" / "train.jsonl", mine)
    assert main(["sft", "--data", str(mine), "--out", str(tmp_path / "mine-run"), *common]) == 1
    assert "pass --skip-long" in capsys.readouterr().err
    assert main(["sft", "--data", str(tw), "--no-skip-long", "--out", str(tmp_path / "strict"), *common]) == 1
    assert "pass --skip-long" in capsys.readouterr().err
    for data, default in (("tinyworld", True), (str(tw), True), (str(mine), False), (str(tmp_path), False)):
        cfg = SFTConfig(model="m", data=data, out="o")
        cfg.validate()
        assert cfg.skip_long is default, data
