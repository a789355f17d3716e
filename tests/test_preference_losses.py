"""KTO, ORPO and SimPO (`llmlab dpo --loss`): each loss against a hand computation on fixed
log-probs, the reference pass skipped where no reference is needed, KTO's data, and CLI runs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from llmlab.train.dpo import DPOLoss, KTOLoss, collate_unpaired, kto_loss, log_odds, orpo_loss, simpo_loss


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_simpo_loss_matches_a_hand_computed_value():
    # Average log-probs -0.5 (chosen) and -1.0 (rejected), beta 2, gamma 0.5:
    # beta * (a_c - a_r) - gamma = 2 * 0.5 - 0.5 = 0.5 ; -log sigmoid(0.5) = log(1 + e^-0.5) = 0.47407698
    losses, rc, rr = simpo_loss(torch.tensor([-0.5]), torch.tensor([-1.0]), beta=2.0, gamma=0.5)
    assert float(losses[0]) == pytest.approx(0.4740769842, abs=1e-7)
    assert (float(rc[0]), float(rr[0])) == pytest.approx((-1.0, -2.0))
    # With no margin, equal averages give log 2 whatever the lengths were.
    same, _, _ = simpo_loss(torch.tensor([-0.7]), torch.tensor([-0.7]), beta=2.0, gamma=0.0)
    assert float(same[0]) == pytest.approx(math.log(2))


def test_orpo_loss_matches_a_hand_computed_value():
    # a_c = log 0.5, a_r = log 0.25: odds 1 and 1/3, log odds 0 and -log 3 ; their difference log 3:
    # -log sigmoid(log 3) = -log(3/4) = 0.28768207 ; NLL(chosen) = log 2 = 0.69314718
    # loss = 0.69314718 + 0.1 * 0.28768207 = 0.72191539
    a_c, a_r = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    assert float(log_odds(a_r)[0]) == pytest.approx(-math.log(3))
    losses, rc, rr = orpo_loss(a_c, a_r, lam=0.1)
    assert float(losses[0]) == pytest.approx(0.7219153887, abs=1e-6)
    assert (float(rc[0]), float(rr[0])) == pytest.approx((0.1 * math.log(0.5), 0.1 * math.log(0.25)))


def test_log_odds_is_finite_for_tiny_probabilities():
    assert float(log_odds(torch.tensor(-50.0))) == pytest.approx(-50.0, abs=1e-6)  # p / (1 - p) ~ p
    # A response the model is certain of (p = 1): large, but finite, so the loss stays a number.
    losses, _, _ = orpo_loss(torch.tensor([0.0]), torch.tensor([0.0]))
    assert math.isfinite(float(log_odds(torch.tensor(0.0)))) and float(losses[0]) == pytest.approx(0.1 * math.log(2))


def test_kto_loss_matches_a_hand_computed_value():
    # r = policy - ref = [1, -2, 3, -1]; z0 = max(0, mean r) = max(0, 0.25) = 0.25 ; beta 0.5
    # desirable r=1:    1 - sigmoid(0.5 * (1 - 0.25))   = 1 - sigmoid(0.375)
    # undesirable r=-2: 1 - sigmoid(0.5 * (0.25 + 2))   = 1 - sigmoid(1.125), weighted 2
    # desirable r=3:    1 - sigmoid(0.5 * (3 - 0.25))   = 1 - sigmoid(1.375)
    # undesirable r=-1: 1 - sigmoid(0.5 * (0.25 + 1))   = 1 - sigmoid(0.625), weighted 2
    policy = torch.tensor([-4.0, -7.0, -2.0, -6.0])
    ref = torch.tensor([-5.0, -5.0, -5.0, -5.0])
    desirable = torch.tensor([True, False, True, False])
    losses, rewards, z0 = kto_loss(policy, ref, desirable, beta=0.5, undesirable_weight=2.0)
    assert float(z0) == pytest.approx(0.25)
    want = [1 - sig(0.375), 2 * (1 - sig(1.125)), 1 - sig(1.375), 2 * (1 - sig(0.625))]
    assert losses.tolist() == pytest.approx([0.4073334, 0.4901700, 0.2018132, 0.6972903], abs=1e-6)
    assert losses.tolist() == pytest.approx(want, abs=1e-6)
    assert rewards.tolist() == pytest.approx([0.5, -1.0, 1.5, -0.5])
    # A policy that moved away from the reference on average (mean r < 0) gets z0 = 0, not negative.
    _, _, z0 = kto_loss(ref - 1, ref, desirable)
    assert float(z0) == 0.0


def test_kto_metrics_measure_rewards_against_the_reference_point():
    # Same numbers as above (beta 0.5, z0 0.25): beta * (r - z0) = [0.375, -1.125, 1.375, -0.625],
    # negated for the undesirable ones: [0.375, 1.125, 1.375, 0.625], all on their label's side.
    batch = {"ref_logps": torch.full((4,), -5.0), "desirable": torch.tensor([True, False, True, False])}
    losses, signed = KTOLoss(beta=0.5).scores(torch.tensor([-4.0, -7.0, -2.0, -6.0]), batch)
    assert signed.tolist() == pytest.approx([0.375, 1.125, 1.375, 0.625])
    # Undesirable r = 0.5 (above the reference, but below z0 = 1) still counts as pushed down.
    _, signed = KTOLoss(beta=0.5).scores(torch.tensor([-3.5, -4.5]), {**batch, "ref_logps": torch.full((2,), -5.0),
                                                                       "desirable": torch.tensor([True, False])})
    assert signed.tolist() == pytest.approx([0.25, 0.25])


def test_kto_starts_at_one_half_per_example():
    # pi == ref: r = 0, z0 = 0, every loss is 1 - sigmoid(0) = 0.5
    logps = torch.tensor([-3.0, -1.0, -2.0])
    losses, _, _ = kto_loss(logps, logps, torch.tensor([True, False, True]), beta=0.1)
    assert losses.tolist() == pytest.approx([0.5, 0.5, 0.5])


def test_reference_free_losses_need_no_reference_in_the_batch(tiny_model, small_tokenizer):
    from test_dpo import pairs_for

    from llmlab.data.sft import collate_pairs
    from llmlab.train.dpo import collate_with_reference, response_logps

    pairs = pairs_for(small_tokenizer)
    pad = small_tokenizer.pad_token_id
    batch = collate_with_reference(pairs, pad)
    assert "ref_logps" not in batch  # no reference pass ran: nothing to collate
    with torch.no_grad():
        avg = response_logps(tiny_model, collate_pairs(pairs, pad), average=True)
        for loss_type, want in (("simpo", simpo_loss(avg[:6], avg[6:], 2.0, 0.3)[0]),
                                ("orpo", orpo_loss(avg[:6], avg[6:], 0.2)[0])):
            loss, metrics = DPOLoss(beta=2.0, loss_type=loss_type, simpo_gamma=0.3, orpo_lambda=0.2)(tiny_model, batch)
            assert float(loss) == pytest.approx(float(want.mean()), rel=1e-5)


def test_kto_data_from_its_own_records_and_from_pairs(tmp_path, small_tokenizer):
    from llmlab.data.sft import load_unpaired, tokenize_unpaired
    from llmlab.errors import DataError

    path = tmp_path / "kto.jsonl"
    rows = [{"prompt": "Hi?", "completion": "Hello there.", "label": True},
            {"prompt": "Hi?", "chosen": "Good day.", "rejected": "Go away.", "reason": "tone"},
            {"prompt": "Hi?", "completion": "Whatever.", "label": False}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    records = load_unpaired(path)
    assert [(ex.completion, good, reason) for ex, good, reason in records] == [
        ("Hello there.", True, None), ("Good day.", True, "tone"), ("Go away.", False, "tone"),
        ("Whatever.", False, None)]
    units, skipped = tokenize_unpaired(records, "chatml", small_tokenizer, 96)
    assert skipped == 0 and [u.desirable for u in units] == [True, True, False, False]
    for u in units:
        u.ref_logp = -1.0
    batch = collate_unpaired(units, 0)
    assert batch["desirable"].tolist() == [True, True, False, False] and batch["ref_logps"].tolist() == [-1.0] * 4

    path.write_text(json.dumps({"prompt": "Hi?", "completion": "Yo.", "label": "yes"}) + "\n")
    with pytest.raises(DataError, match=r"kto.jsonl:1: unpaired record needs 'label': true or false, got 'yes'"):
        load_unpaired(path)


def test_kto_steps_separate_desirable_from_undesirable(tiny_model, small_tokenizer):
    from test_dpo import pairs_for, train_steps

    from llmlab.data.sft import TokenizedUnpaired
    from llmlab.train.dpo import reference_logps

    pairs = pairs_for(small_tokenizer)
    units = [TokenizedUnpaired(p.chosen, True) for p in pairs] + [TokenizedUnpaired(p.rejected, False) for p in pairs]
    totals, _ = reference_logps(tiny_model, [u.example for u in units], small_tokenizer.pad_token_id, "cpu")
    for u, t in zip(units, totals):
        u.ref_logp = t
    loss, metrics = train_steps(KTOLoss(beta=0.5), tiny_model, collate_unpaired(units, small_tokenizer.pad_token_id))
    assert loss < 0.4 and metrics["reward_acc"] == 1.0 and metrics["margin"] > 1.0


@pytest.mark.parametrize("bad, message", [
    (dict(loss_type="kpo"), "--loss must be one of sigmoid, ipo, kto, orpo, simpo, got 'kpo'"),
    (dict(simpo_gamma=-1.0), "simpo_gamma must be >= 0"),
    (dict(orpo_lambda=-0.1), "orpo_lambda must be >= 0"),
    (dict(desirable_weight=0.0, undesirable_weight=0.0), "cannot both be 0"),
])
def test_bad_settings_are_one_line_errors(bad, message):
    from llmlab.errors import ConfigError
    from llmlab.train.finetune_config import DPOConfig

    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        DPOConfig(model="m", data="d", out="o", **bad).validate()


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["kto", "orpo", "simpo"])
def test_dpo_cli_runs_each_loss(loss, finetune_checkpoint, tmp_path, monkeypatch):
    from test_sft import run_cli

    data = tmp_path / "prefs.jsonl"
    rows = [{"prompt": f"How was the shop, {n}?", "chosen": "It was good.", "rejected": "It was bad.",
             "reason": r} for n in ["Mia", "Tom", "Sam", "Lily", "Ben"] * 4 for r in ("tone", "fact")]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    flag = "--loss-type" if loss == "orpo" else "--loss"  # the old spelling still works
    res = run_cli(["dpo", "--model", str(finetune_checkpoint), "--data", str(data), "--out", str(tmp_path / loss),
                   flag, loss, "--max-steps", "3", "--batch-size", "8", "--threads", "1", "--json"], tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["loss_type"] == loss and math.isfinite(out["val_loss"]) and 0 <= out["val_reward_acc"] <= 1
    assert ("examples" in out) == (loss == "kto")
    if loss == "kto":
        assert out["examples"] == 80 - 4  # 40 pairs split in two, less the 5% held out for validation


@pytest.mark.slow
def test_reference_free_losses_skip_the_reference_pass(finetune_checkpoint, tmp_path, monkeypatch):
    import llmlab.train.dpo as dpo
    from llmlab.train.finetune_config import DPOConfig

    def forbidden(*args, **kwargs):
        raise AssertionError("the reference pass ran")

    monkeypatch.setattr(dpo, "attach_reference_logps", forbidden)
    data = tmp_path / "prefs.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"Hi {i}?", "chosen": "Hello.", "rejected": "No."})
                              for i in range(8)) + "\n")
    for loss in ("orpo", "simpo"):
        cfg = DPOConfig(model=str(finetune_checkpoint), data=str(data), out=str(tmp_path / loss), loss_type=loss,
                        max_steps=1, batch_size=4, device="cpu", progress=False)
        cfg.validate()
        assert dpo.run_dpo(cfg, log=lambda *_: None)["loss_type"] == loss
    with pytest.raises(AssertionError, match="the reference pass ran"):
        cfg = DPOConfig(model=str(finetune_checkpoint), data=str(data), out=str(tmp_path / "dpo"), max_steps=1,
                        batch_size=4, device="cpu", progress=False)
        cfg.validate()
        dpo.run_dpo(cfg, log=lambda *_: None)
