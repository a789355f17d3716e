"""Reward model: Bradley-Terry loss, last-token pooling whatever the padding side, learning a
trivially separable preference set, and saving/loading the head."""

from __future__ import annotations

import json
import math

import pytest
import torch

from llmlab.data.formats import parse_preference_record
from llmlab.data.sft import ShuffledBatches, collate_pairs, tokenize_preferences
from llmlab.model.heads import RewardModel, ScalarHead, last_token_index, pool_last
from llmlab.train.reward import RewardLoss, bradley_terry_loss


def test_bradley_terry_loss_by_hand():
    loss = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0]))
    assert loss.tolist() == pytest.approx([math.log(1 + math.exp(-1.0)), math.log(2)])  # 0.3132617, 0.6931472
    with_margin = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([1.0]), margin=1.0)
    assert float(with_margin[0]) == pytest.approx(math.log(2))


def test_last_token_index_for_either_padding_side():
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert last_token_index(right).tolist() == [2, 4]
    assert last_token_index(left).tolist() == [4, 4]
    scores = torch.arange(10.0).view(2, 5)
    assert pool_last(scores, right).tolist() == [2.0, 9.0]


def test_padding_side_gives_the_same_reward(tiny_model, small_tokenizer):
    """Pooling "the last position" would read padding for right-padded rows: a classic reward-model bug."""
    torch.manual_seed(0)
    rm = RewardModel(tiny_model, ScalarHead(tiny_model.config.d_model, init_std=0.5)).eval()
    texts = ["Mia had a small dog named Rex.", "Tom lives in Pinebrook."]
    with torch.no_grad():
        alone = [float(rm(torch.tensor([small_tokenizer.encode(t)]))[0]) for t in texts]
        for side in ("left", "right"):
            enc = small_tokenizer(texts, padding=True, padding_side=side, return_tensors="pt")
            assert not bool(enc["attention_mask"].all())
            got = rm(enc["input_ids"], enc["attention_mask"]).tolist()
            assert got == pytest.approx(alone, abs=1e-4), side


def separable_pairs(tokenizer, n):
    names = ["Mia", "Tom", "Sam", "Lily", "Ben", "Rex", "Zoë", "Köln"]
    recs = [{"prompt": f"Tell me about {names[i % 8]}'s day {i}.", "chosen": "It was a happy day!",
             "rejected": "It was sad.", "reason": ["tone", "fact"][i % 2]} for i in range(n)]
    pairs, _ = tokenize_preferences([parse_preference_record(r, f"r{i}") for i, r in enumerate(recs)], "chatml",
                                    tokenizer, 96)
    return pairs


def test_reward_model_learns_a_trivially_separable_preference_set(tiny_model, small_tokenizer, tmp_path):
    from llmlab.train.config import TrainConfig
    from llmlab.train.reward import make_eval_fn
    from llmlab.train.trainer import Trainer

    train, val = separable_pairs(small_tokenizer, 32), separable_pairs(small_tokenizer, 40)[32:]
    pad = small_tokenizer.pad_token_id
    head = ScalarHead(tiny_model.config.d_model)
    objective = RewardLoss(head)
    evaluate = make_eval_fn(val, objective, pad, "cpu", batch_size=8)
    with torch.no_grad():
        before = evaluate(tiny_model.eval())
    cfg = TrainConfig(data="-", out=str(tmp_path), max_steps=25, lr=2e-3, warmup_steps=0, progress=False,
                      eval_every=1000, save_every=1000, weight_decay=0.0, spike_factor=1e9)
    trainer = Trainer(tiny_model, objective, ShuffledBatches(train, 8, lambda u: collate_pairs(u, pad)), cfg,
                      device=torch.device("cpu"), extra_parameters=list(head.parameters()), log=lambda *_: None)
    trainer.plan(1)
    for _ in range(25):
        trainer.train_step()
    with torch.no_grad():
        after = evaluate(tiny_model.eval())
    assert before["val_loss"] > 0.5 and after["val_loss"] < 0.1
    assert after["val_accuracy"] == 1.0 and after["val_margin"] > 2.0
    assert after["val_acc/tone"] == 1.0 and after["val_acc/fact"] == 1.0


def test_reward_head_round_trips_through_a_checkpoint(tiny_model, small_tokenizer, tmp_path):
    from llmlab.checkpoint import save_checkpoint
    from llmlab.train.reward import RewardScorer, head_writer, load_reward_model

    torch.manual_seed(1)
    head = ScalarHead(tiny_model.config.d_model, init_std=0.3)
    save_checkpoint(tmp_path / "rm", tiny_model, small_tokenizer, write_extra=head_writer(head, "chatml"))
    scorer = load_reward_model(tmp_path / "rm")
    direct = RewardScorer(RewardModel(tiny_model, head), small_tokenizer, "chatml")
    prompts, responses = ["How was the shop?", "Where is Rex?"], ["Good.", "Rex is in the park with Mia."]
    assert scorer(prompts, responses) == pytest.approx(direct(prompts, responses), abs=1e-5)
    assert json.loads((tmp_path / "rm" / "reward_head.json").read_text())["template"] == "chatml"


@pytest.mark.slow
def test_reward_cli_end_to_end(finetune_checkpoint, tmp_path):
    from test_sft import run_cli

    data = tmp_path / "prefs.jsonl"
    rows = [{"prompt": f"Was the day of {n} nice?", "chosen": "Yes, a happy day!", "rejected": "No.", "reason": r}
            for n in ["Mia", "Tom", "Sam", "Lily", "Ben"] * 8 for r in ("tone", "fact")]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = run_cli(["reward", "--model", str(finetune_checkpoint), "--data", str(data), "--out", str(tmp_path / "rm"),
                   "--max-steps", "20", "--batch-size", "8", "--threads", "1", "--json"], tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["val_accuracy"] == 1.0 and {"val_acc/fact", "val_acc/tone"} <= set(out)
    assert (tmp_path / "rm" / "checkpoint" / "reward_head.safetensors").is_file()
