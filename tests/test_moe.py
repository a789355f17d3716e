"""Mixture of experts: top-k routing with dropless dispatch equal to a naive loop over experts,
the router losses by hand, training through the one loop with utilisation logged, KV-cached
generation, and Mixtral interop (logits and greedy generation equal to `transformers`)."""

from __future__ import annotations

import math

import pytest
import torch

from llmlab.config import ModelConfig
from llmlab.errors import ConfigError
from llmlab.model import TransformerLM
from llmlab.model.moe import MoEMLP, router_stats
from test_train import shards  # noqa: F401  (a fixture)

CFG = dict(vocab_size=64, context_length=48, n_layer=2, n_head=2, d_model=32, d_ff=48)


def naive_moe(moe: MoEMLP, x: torch.Tensor) -> torch.Tensor:
    """Token by token: softmax over experts, keep the top k, renormalise, sum the weighted experts."""
    out = torch.zeros_like(x)
    for n in range(x.size(0)):
        probs = torch.softmax(moe.router(x[n]), -1)
        top = sorted(range(len(probs)), key=lambda e: -float(probs[e]))[:moe.k]
        total = sum(float(probs[e]) for e in top)
        for e in top:
            out[n] += float(probs[e]) / total * moe.experts[e](x[n:n + 1])[0]
        if moe.shared is not None:
            out[n] += moe.shared(x[n:n + 1])[0]
    return out


@pytest.mark.parametrize("mlp,k,shared", [("swiglu", 2, False), ("gelu", 1, True), ("swiglu", 3, True)])
def test_routing_is_top_k_and_equals_a_loop_over_experts(mlp, k, shared, torch_threads):
    torch.manual_seed(0)
    moe = MoEMLP(ModelConfig(**CFG, mlp=mlp, n_experts=5, experts_per_token=k, shared_expert=shared))
    x = torch.randn(3, 7, 32)
    seen = []  # rows each expert ran on
    hooks = [m.register_forward_hook(lambda m, i, o, e=e: seen.append((e, i[0].shape[0])))
             for e, m in enumerate(moe.experts)]
    with torch.no_grad():
        y, stats = moe(x)
    for h in hooks:
        h.remove()
    assert sum(n for _, n in seen) == 21 * k  # every token went to exactly k experts, none dropped
    assert len({e for e, _ in seen}) == len(seen)  # each expert ran once, on its contiguous slice
    assert stats.utilisation.sum().item() == pytest.approx(1.0)
    with torch.no_grad():
        assert torch.allclose(y.reshape(-1, 32), naive_moe(moe, x.reshape(-1, 32)), atol=1e-6)


def test_router_losses_equal_a_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5], [0.1, 0.2, 0.3, 0.4], [-1.0, 3.0, 0.0, 0.0]])
    probs = torch.softmax(logits, -1)
    experts = probs.topk(2, -1).indices  # token 0: 0, 3; token 1: 3, 2; token 2: 1, 2 (or 3: a tie)
    stats = router_stats(logits, probs, experts)
    rows = probs.tolist()
    chosen = [set(r) for r in experts.tolist()]
    f = [sum(e in c for c in chosen) / 6 for e in range(4)]
    p = [sum(r[e] for r in rows) / 3 for e in range(4)]
    assert stats.aux_loss.item() == pytest.approx(4 * sum(fi * pi for fi, pi in zip(f, p)), rel=1e-6)
    lse = [math.log(sum(math.exp(v) for v in r)) for r in logits.tolist()]
    assert stats.z_loss.item() == pytest.approx(sum(v * v for v in lse) / 3, rel=1e-6)
    assert stats.utilisation.tolist() == pytest.approx(f)
    # Balanced routing with uniform probabilities gives exactly 1.
    even = router_stats(torch.zeros(4, 4), torch.full((4, 4), 0.25), torch.tensor([[0], [1], [2], [3]]))
    assert even.aux_loss.item() == pytest.approx(1.0)


def test_model_output_carries_the_router_losses_and_dense_layers_alternate(torch_threads):
    cfg = ModelConfig(**{**CFG, "n_layer": 4}, n_experts=4, layer_mlp=["dense", "moe"])
    assert cfg.mlp_kinds() == ["dense", "moe", "dense", "moe"]
    torch.manual_seed(0)
    model = TransformerLM(cfg)
    ids = torch.randint(0, 64, (2, 12))
    out = model(ids, labels=ids)
    r = out.router
    assert out.aux_loss.item() == pytest.approx(0.01 * r["aux_loss"].item() + 0.001 * r["z_loss"].item(), rel=1e-5)
    assert r["utilisation"].shape == (4,) and r["utilisation"].sum().item() == pytest.approx(1.0)
    out.aux_loss.backward()
    assert model.blocks[1].mlp.router.weight.grad.abs().sum() > 0  # the router losses train the router
    dense = TransformerLM(ModelConfig(**CFG))(ids, labels=ids)
    assert dense.aux_loss is None and dense.router is None


def test_bad_moe_configs_are_one_line_errors():
    for bad, words in [(dict(n_experts=-1), "n_experts"), (dict(n_experts=2, experts_per_token=3), "experts_per_token"),
                       (dict(layer_mlp=["moe"]), "n_experts is 0"), (dict(n_experts=2, layer_mlp=["sparse"]), "layer_mlp"),
                       (dict(n_experts=2, router_z_loss_coef=-1.0), "non-negative")]:
        with pytest.raises(ConfigError, match=words) as err:
            ModelConfig(**CFG, **bad)
        assert "\n" not in str(err.value)


def test_active_parameters_and_flops_count_k_experts():
    from llmlab.model.accounting import count_parameters, flops_per_token

    cfg = ModelConfig(**CFG, n_experts=4, experts_per_token=1, shared_expert=True)
    assert count_parameters(cfg).total == TransformerLM(cfg).num_parameters()
    expert = 3 * 32 * 48
    assert count_parameters(cfg).total - count_parameters(cfg, active=True).total == 2 * 3 * expert
    dense = ModelConfig(**{**CFG, "d_ff": 96})  # one expert + the shared one: twice the dense MLP width
    assert flops_per_token(cfg) - flops_per_token(dense) == 3 * 2 * 2 * 32 * 4  # only the routers differ


def test_a_tiny_moe_model_trains_through_the_loop_and_logs_utilisation(shards, tmp_path, torch_threads):
    from llmlab.data.loader import WindowLoader
    from llmlab.data.shards import PreparedData
    from llmlab.train.config import TrainConfig
    from llmlab.train.metrics_log import read_metrics
    from llmlab.train.objectives import NextTokenLoss
    from llmlab.train.trainer import Trainer

    data = PreparedData(shards[0])
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(**{**CFG, "vocab_size": data.vocab_size}, n_experts=4))
    cfg = TrainConfig(data=str(shards[0]), out=str(tmp_path), max_steps=30, warmup_steps=2, lr=3e-3,
                      eval_every=1000, save_every=1000, samples=0, progress=False)
    loader = WindowLoader(data.split("train"), 32, 4, seed=0)
    trainer = Trainer(model, NextTokenLoss(), loader, cfg, device=torch.device("cpu"), log=lambda *_: None)
    trainer.plan(128)
    trainer.train()
    steps = [r for r in read_metrics(tmp_path) if "loss" in r and "expert_util_0" in r]
    assert len(steps) >= 2 and steps[-1]["loss"] < steps[0]["loss"] - 0.5
    util = [steps[-1][f"expert_util_{e}"] for e in range(4)]
    assert sum(util) == pytest.approx(1.0) and min(util) > 0
    assert steps[-1]["moe_aux_loss"] >= 1.0 - 1e-6 and steps[-1]["moe_z_loss"] > 0


def test_kv_cached_generation_equals_recomputing_every_step(torch_threads):
    from llmlab.infer import Engine

    torch.manual_seed(1)
    model = TransformerLM(ModelConfig(**CFG, n_experts=4, shared_expert=True, init_std=0.2)).eval()
    prompt = [3, 9, 4, 7]
    got = Engine(model).generate(prompt, temperature=0, max_new_tokens=12, ignore_eos=True).token_ids
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(12):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    assert got == ids[len(prompt):]


# ---------------------------------------------------------------------------- Mixtral interop
def hf_mixtral(seed: int = 3, **extra):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    cfg = transformers.AutoConfig.for_model(
        "mixtral", vocab_size=120, hidden_size=64, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=64,
        rope_theta=5000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=0, pad_token_id=0, **extra,
    )
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # O(1) logits and decisive routing (the default init is near-uniform)
        for name, p in model.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if "norm" in name else 0.15 * torch.randn_like(p))
    return model.eval()


def test_mixtral_import_matches_transformers_logits_and_greedy_generation(tmp_path, torch_threads):
    import llmlab
    from llmlab.infer import Engine
    from llmlab.interop import import_hf

    hf = hf_mixtral()
    hf.save_pretrained(tmp_path / "hf")
    result = import_hf(tmp_path / "hf", tmp_path / "ckpt")
    assert result.config["n_experts"] == 4 and result.config["family"] == "mixtral"
    model, _ = llmlab.load(tmp_path / "ckpt")
    ids = torch.randint(2, 120, (2, 24), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ours, theirs = model(ids).logits, hf(ids).logits
        assert (ours - theirs).abs().max() <= 1e-4
        # The routing matters: with the top-1 expert only, the logits differ.
        top1 = TransformerLM(model.config.replace(experts_per_token=1)).eval()
        top1.load_state_dict(model.state_dict())
        assert (top1(ids).logits - theirs).abs().max() > 1e-2
        prompt = ids[:1, :5]
        expected = hf.generate(prompt, max_new_tokens=20, do_sample=False, min_new_tokens=20)[0, 5:].tolist()
    got = Engine(model).generate(prompt[0].tolist(), temperature=0, max_new_tokens=20, ignore_eos=True)
    assert got.token_ids == expected


def test_mixtral_export_round_trips_through_transformers(tmp_path, torch_threads):
    transformers = pytest.importorskip("transformers")
    import llmlab
    from llmlab.checkpoint import save_checkpoint
    from llmlab.interop import export_hf, import_hf

    cfg = ModelConfig(vocab_size=120, context_length=64, n_layer=2, n_head=4, n_kv_head=2, d_model=64, d_ff=48,
                      n_experts=4, experts_per_token=2, tie_embeddings=False, family="mixtral", init_std=0.15)
    torch.manual_seed(0)
    model = TransformerLM(cfg).eval()
    save_checkpoint(tmp_path / "ckpt", model)
    export_hf(tmp_path / "ckpt", tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert type(hf).__name__ == "MixtralForCausalLM"
    ids = torch.randint(0, 120, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (model(ids).logits - hf(ids).logits).abs().max() <= 1e-4
    # transformers' aux-loss coefficient is llmlab's / k (its expert fractions sum to k)
    assert hf.config.router_aux_loss_coef == pytest.approx(cfg.router_aux_loss_coef / 2)
    import_hf(tmp_path / "hf", tmp_path / "back")
    back, _ = llmlab.load(tmp_path / "back")
    assert back.config.router_aux_loss_coef == pytest.approx(cfg.router_aux_loss_coef)
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in model.state_dict().items())


def test_moe_exports_that_cannot_be_expressed_are_one_line_errors(tmp_path):
    from llmlab.checkpoint import save_checkpoint
    from llmlab.errors import CheckpointError
    from llmlab.interop import export_gguf, export_hf

    base = dict(vocab_size=64, context_length=32, n_layer=2, n_head=2, d_model=32, d_ff=48, n_experts=2)
    for changes, words in [(dict(family="llama"), "export as family mixtral"),
                           (dict(family="mixtral", shared_expert=True), "shared expert"),
                           (dict(family="mixtral", layer_mlp=["dense", "moe"]), "dense layers"),
                           (dict(family="mixtral", n_experts=0), "n_experts is 0")]:
        ckpt = tmp_path / str(len(list(tmp_path.iterdir())))
        save_checkpoint(ckpt, TransformerLM(ModelConfig(**{**base, **changes})))
        with pytest.raises(CheckpointError, match=words) as err:
            export_hf(ckpt, tmp_path / "out")
        assert "\n" not in str(err.value)
    # GGUF: llama.cpp's llama architecture has dense MLPs, and the mixtral family is not written.
    for family, words in [("llama", "n_experts is 2"), ("mixtral", "family 'mixtral' is not supported")]:
        ckpt = tmp_path / f"gguf-{family}"
        save_checkpoint(ckpt, TransformerLM(ModelConfig(**base, family=family)))
        with pytest.raises(CheckpointError, match=words) as err:
            export_gguf(ckpt, tmp_path / "out.gguf")
        assert "\n" not in str(err.value) and not (tmp_path / "out.gguf").exists()


def test_fine_tuning_objectives_add_the_router_losses(torch_threads):
    """SFT, DPO and KTO train an MoE model's router as pre-training does: each objective's loss is its
    own plus the model's aux_loss, with the router metrics logged; a dense model's is unchanged."""
    from llmlab.train.dpo import DPOLoss, KTOLoss, response_logps
    from llmlab.train.sft import SFTLoss

    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(**CFG, n_experts=4))
    ids = torch.randint(0, 64, (4, 10))
    targets = ids.roll(-1, 1)
    targets[:, :4] = -100  # the prompt
    batch = {"input_ids": ids, "targets": targets, "attention_mask": torch.ones_like(ids)}
    out = model(ids, targets=targets)
    loss, metrics = SFTLoss()(model, batch)
    assert out.aux_loss.item() > 0
    assert loss.item() == pytest.approx(out.loss.item() + out.aux_loss.item(), rel=1e-6)
    assert metrics["moe_aux_loss"].item() == pytest.approx(out.router["aux_loss"].item())
    loss.backward()
    assert model.blocks[0].mlp.router.weight.grad.abs().sum() > 0

    ref = response_logps(model, batch).detach() - 0.3
    pairs = {**batch, "ref_logps": ref}
    aux = model(ids, attention_mask=batch["attention_mask"]).aux_loss.item()
    dpo = DPOLoss(beta=0.1)
    plain = dpo.pair_losses(response_logps(model, pairs), pairs)[0].mean().item()
    loss, metrics = dpo(model, pairs)
    assert loss.item() == pytest.approx(plain + aux, rel=1e-6) and "expert_util_0" in metrics
    unpaired = {**pairs, "desirable": torch.tensor([True, False, True, False])}
    kto = KTOLoss(beta=0.1)
    plain = kto.scores(response_logps(model, unpaired), unpaired)[0].mean().item()
    assert kto(model, unpaired)[0].item() == pytest.approx(plain + aux, rel=1e-6)

    dense = TransformerLM(ModelConfig(**CFG))
    loss, metrics = SFTLoss()(dense, batch)
    assert loss.item() == pytest.approx(dense(ids, targets=targets).loss.item()) and metrics == {}


def test_lora_adapts_every_expert_and_merges_exactly(torch_threads):
    from llmlab.model.lora import LoRAConfig, apply_lora, count_trainable, merge_and_unload

    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(**CFG, n_experts=3, shared_expert=True, layer_mlp=["moe", "dense"]))
    adapted = apply_lora(model, LoRAConfig(rank=2, targets="gate,down"))
    assert "blocks.0.mlp.experts.2.gate" in adapted and "blocks.0.mlp.shared.down" in adapted
    assert "blocks.1.mlp.gate" in adapted and not any("router" in a for a in adapted)
    assert len(adapted) == 2 * (3 + 1) + 2
    assert not model.blocks[0].mlp.router.weight.requires_grad  # the router stays the base model's
    trainable, _ = count_trainable(model)
    assert trainable == sum(p.numel() for n, p in model.named_parameters() if ".lora_" in n)
    with torch.no_grad():  # move B off zero so the adapters change the output
        for n, p in model.named_parameters():
            if ".lora_B." in n:
                p.normal_(0, 0.05)
    ids = torch.randint(0, 64, (2, 12))
    adapted_logits = model(ids).logits
    merged = merge_and_unload(model)
    assert not any(".lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(merged(ids).logits, adapted_logits, atol=1e-5, rtol=1e-5)
