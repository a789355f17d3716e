"""DPO: the loss against hand-computed values, log 2 at the start, precomputed reference
log-probabilities, and a run that learns a preference."""

from __future__ import annotations

import json
import math

import pytest
import torch

from llmlab.data.formats import parse_preference_record
from llmlab.data.sft import collate_pairs, tokenize_preferences
from llmlab.train.dpo import DPOLoss, attach_reference_logps, collate_with_reference, dpo_loss, response_logps


def test_dpo_loss_matches_a_hand_computed_value():
    # pi_c - ref_c = -1 - (-1.5) = 0.5 ; pi_r - ref_r = -2 - (-1.5) = -0.5 ; h = 1
    losses, rc, rr = dpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-1.5]), torch.tensor([-1.5]),
                              beta=0.1)
    assert float(losses[0]) == pytest.approx(math.log(1 + math.exp(-0.1)), abs=1e-7)  # -log sigmoid(0.1) = 0.64439666
    assert float(losses[0]) == pytest.approx(0.6443966600, abs=1e-7)
    assert (float(rc[0]), float(rr[0])) == pytest.approx((0.05, -0.05))
    # Conservative DPO with label smoothing 0.1: 0.9 * softplus(-0.1) + 0.1 * softplus(0.1)
    smooth, _, _ = dpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-1.5]), torch.tensor([-1.5]),
                            beta=0.1, label_smoothing=0.1)
    assert float(smooth[0]) == pytest.approx(0.9 * 0.6443966600 + 0.1 * 0.7443966600, abs=1e-7)
    # IPO: (h - 1 / (2 beta))^2 = (1 - 5)^2
    ipo, _, _ = dpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-1.5]), torch.tensor([-1.5]),
                         beta=0.1, loss_type="ipo")
    assert float(ipo[0]) == pytest.approx(16.0)


def test_dpo_loss_is_log_2_when_policy_equals_reference():
    logps = torch.tensor([-3.0, -7.5, -0.2])
    other = torch.tensor([-1.0, -9.0, -4.0])
    losses, rc, rr = dpo_loss(logps, other, logps, other, beta=0.3)
    assert torch.allclose(losses, torch.full((3,), math.log(2)))
    assert torch.equal(rc, torch.zeros(3)) and torch.equal(rr, torch.zeros(3))


def pairs_for(tokenizer, n=6):
    recs = [{"prompt": f"How was the bakery, {name}?", "chosen": "It was good and the bread was fresh.",
             "rejected": "It was bad.", "reason": "tone"} for name in ["Mia", "Tom", "Sam", "Lily", "Ben", "Zoë"][:n]]
    pairs, _ = tokenize_preferences([parse_preference_record(r, f"r{i}") for i, r in enumerate(recs)], "chatml",
                                    tokenizer, 96)
    return pairs


def test_sequence_logps_are_sums_over_the_response_tokens_only(tiny_model, small_tokenizer):
    pairs = pairs_for(small_tokenizer, 2)
    batch = collate_pairs(pairs, small_tokenizer.pad_token_id)
    with torch.no_grad():
        got = response_logps(tiny_model, batch)
        ex = pairs[0].chosen
        ids = torch.tensor([ex.input_ids])
        lp = torch.log_softmax(tiny_model(ids).logits[0, :-1], -1)
        want = sum(float(lp[t, ex.input_ids[t + 1]]) for t in range(len(ex) - 1) if ex.trained[t + 1])
    assert float(got[0]) == pytest.approx(want, abs=1e-4)
    assert got.shape == (4,)  # chosen rows then rejected rows


def test_reference_logps_are_precomputed_and_start_the_loss_at_log_2(tiny_model, small_tokenizer):
    pairs = pairs_for(small_tokenizer)
    pad = small_tokenizer.pad_token_id
    attach_reference_logps(tiny_model, pairs, pad, "cpu", batch_size=4)
    assert all(p.ref_logps is not None and p.ref_logps[0] < 0 for p in pairs)
    batch = collate_with_reference(pairs, pad)
    with torch.no_grad():
        loss, metrics = DPOLoss(beta=0.1)(tiny_model, batch)
    assert float(loss) == pytest.approx(math.log(2), abs=1e-5)
    assert metrics["margin"] == pytest.approx(0.0, abs=1e-5)


def test_rpo_adds_the_chosen_responses_mean_nll(tiny_model, small_tokenizer):
    pairs = pairs_for(small_tokenizer)
    pad = small_tokenizer.pad_token_id
    attach_reference_logps(tiny_model, pairs, pad, "cpu", batch_size=4)
    batch = collate_with_reference(pairs, pad)
    with torch.no_grad():
        dpo, _ = DPOLoss(beta=0.1)(tiny_model, batch)
        rpo, metrics = DPOLoss(beta=0.1, rpo_alpha=0.5)(tiny_model, batch)
    # By hand: the mean over chosen responses of -(sum of target log-probs / number of targets).
    chosen_nll = [-p.ref_logps[0] / sum(p.chosen.trained) for p in pairs]  # policy == reference here
    want = sum(chosen_nll) / len(chosen_nll)
    assert metrics["nll_chosen"] == pytest.approx(want, rel=1e-4)
    assert float(rpo) == pytest.approx(float(dpo) + 0.5 * want, rel=1e-5)


def test_rpo_alpha_must_not_be_negative():
    from llmlab.errors import ConfigError
    from llmlab.train.finetune_config import DPOConfig

    with pytest.raises(ConfigError, match="rpo_alpha must be >= 0"):
        DPOConfig(model="m", data="d", out="o", rpo_alpha=-1.0).validate()


def train_steps(objective, model, batch, steps: int = 15, lr: float = 3e-3):
    """`steps` AdamW steps of `objective` on one batch; the last (loss, metrics)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss, metrics = objective(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach()), metrics


def test_dpo_steps_raise_the_chosen_responses_relative_likelihood(tiny_model, small_tokenizer):
    pairs = pairs_for(small_tokenizer)
    pad = small_tokenizer.pad_token_id
    attach_reference_logps(tiny_model, pairs, pad, "cpu")
    loss, metrics = train_steps(DPOLoss(beta=0.5), tiny_model, collate_with_reference(pairs, pad))
    assert float(loss) < 0.3 and metrics["reward_acc"] == 1.0 and metrics["margin"] > 1.0


@pytest.mark.slow
def test_dpo_cli_end_to_end(finetune_checkpoint, tmp_path):
    from test_sft import run_cli

    data = tmp_path / "prefs.jsonl"
    rows = [{"prompt": f"How was the shop, {n}?", "chosen": "It was good.", "rejected": "It was bad.",
             "reason": r} for n in ["Mia", "Tom", "Sam", "Lily", "Ben"] * 8 for r in ("tone", "fact")]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = run_cli(["dpo", "--model", str(finetune_checkpoint), "--data", str(data), "--out", str(tmp_path / "dpo"),
                   "--max-steps", "12", "--batch-size", "8", "--beta", "0.5", "--lr", "3e-3", "--threads", "1",
                   "--json"], tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["val_reward_acc"] == 1.0 and out["val_margin"] > 0 and out["beta"] == 0.5
    assert set(k for k in out if k.startswith("val_acc/")) == {"val_acc/fact", "val_acc/tone"}
