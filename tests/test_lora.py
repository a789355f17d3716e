"""LoRA: adapters on chosen projections, merge-and-unload, and the adapter-free reference."""

from __future__ import annotations

import pytest
import torch

from llmlab.config import preset
from llmlab.errors import ConfigError
from llmlab.model import TransformerLM
from llmlab.model.lora import (
    LoRAConfig, LoRALinear, adapters_disabled, apply_lora, count_trainable, lora_parameters, lora_state_dict,
    merge_and_unload,
)

LLAMA = dict(vocab_size=97, n_layer=2, d_model=32, n_head=4, n_kv_head=2, context_length=24)
GPT2 = dict(vocab_size=97, n_layer=2, d_model=32, n_head=4, context_length=24)


def make(style: str = "llama", seed: int = 0) -> TransformerLM:
    torch.manual_seed(seed)
    cfg = preset("tiny", **LLAMA) if style == "llama" else preset("gpt2-12m", **GPT2)
    return TransformerLM(cfg).eval()


def randomise_adapters(model, seed: int = 1) -> None:
    """B starts at zero (adapter = identity); give it values so merging has something to fold."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora_parameters(model):
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


@pytest.fixture
def ids():
    return torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("style,targets", [
    ("llama", "all"), ("llama", "q,v"), ("llama", "qkv,o"), ("llama", "k,down"), ("gpt2", "all"), ("gpt2", "q,up"),
])
def test_merge_gives_the_adapter_models_logits(style, targets, ids, torch_threads):
    model = make(style)
    apply_lora(model, LoRAConfig(rank=4, alpha=8, targets=targets))
    randomise_adapters(model)
    with torch.no_grad():
        adapted = model(ids).logits
        merge_and_unload(model)
        merged = model(ids).logits
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert torch.allclose(adapted, merged, atol=1e-5), (adapted - merged).abs().max()
    assert all(p.requires_grad for p in model.parameters())


def test_fresh_adapters_change_nothing_and_disabled_adapters_give_the_base(ids, torch_threads):
    base = make()
    model = make()
    apply_lora(model, LoRAConfig(rank=4, targets="all"))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, base(ids).logits)  # B = 0 at init
        randomise_adapters(model)
        assert not torch.allclose(model(ids).logits, base(ids).logits)
        with adapters_disabled(model):
            assert torch.equal(model(ids).logits, base(ids).logits)
        assert not torch.allclose(model(ids).logits, base(ids).logits)  # re-enabled afterwards


def test_q_and_v_slices_touch_only_their_rows_of_the_fused_projection(torch_threads):
    model = make()
    apply_lora(model, LoRAConfig(rank=2, targets="q,v"))
    randomise_adapters(model)
    layer = model.blocks[0].attn.qkv
    q_dim, kv_dim, _ = model.blocks[0].attn.split_sizes
    delta = layer.delta_weight()
    assert delta[:q_dim].abs().sum() > 0
    assert delta[q_dim:q_dim + kv_dim].abs().sum() == 0  # k untouched
    assert delta[q_dim + kv_dim:].abs().sum() > 0
    # Each slice has its own A and B, exactly as separate W_q and W_v adapters would.
    assert layer.lora_A["q"].shape == (2, 32) and layer.lora_B["q"].shape == (q_dim, 2)
    assert layer.lora_B["v"].shape == (kv_dim, 2)


def test_only_adapters_train_and_names_stay_compatible(torch_threads):
    model = make()
    base_keys = set(model.state_dict())
    apply_lora(model, LoRAConfig(rank=4, targets="all"))
    trainable, total = count_trainable(model)
    assert trainable == sum(p.numel() for p in lora_parameters(model))
    # per block: q,k,v slices + o + gate/up/down, each r*(in+out) = 4*(32 + out)
    d, q, kv, ff = 32, 32, 16, model.config.d_ff
    per_block = 4 * ((d + q) + 2 * (d + kv) + (q + d) + 2 * (d + ff) + (ff + d))
    assert trainable == 2 * per_block
    assert base_keys <= set(model.state_dict())  # base weights keep their names
    assert set(lora_state_dict(model)) == set(model.state_dict()) - base_keys
    merge_and_unload(model)
    assert set(model.state_dict()) == base_keys


def test_a_training_step_moves_adapters_not_base_weights(ids, torch_threads):
    model = make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    apply_lora(model, LoRAConfig(rank=4, targets="all"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    loss = model(ids, labels=ids).loss
    loss.backward()
    opt.step()
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in before.items())
    assert any(v.abs().sum() > 0 for k, v in lora_state_dict(model).items() if "lora_B" in k)


def test_merged_model_saves_and_loads_as_a_plain_checkpoint(tmp_path, small_tokenizer, torch_threads):
    import llmlab
    from llmlab.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = TransformerLM(preset("tiny", **{**LLAMA, "vocab_size": small_tokenizer.vocab_size})).eval()
    apply_lora(model, LoRAConfig(rank=4, targets="all"))
    randomise_adapters(model)
    x = torch.tensor([small_tokenizer.encode("Mia had a small dog.")])
    with torch.no_grad():
        want = model(x).logits
    save_checkpoint(tmp_path / "merged", merge_and_unload(model), small_tokenizer)
    loaded, _ = llmlab.load(tmp_path / "merged")
    with torch.no_grad():
        assert torch.allclose(loaded(x).logits, want, atol=1e-5)


@pytest.mark.parametrize("kwargs,message", [
    (dict(targets="q,wq"), "unknown LoRA target 'wq'"),
    (dict(targets="qkv,q"), "either qkv"),
    (dict(rank=0), "rank must be >= 1"),
    (dict(dropout=1.0), "dropout"),
])
def test_bad_lora_settings_fail_clearly(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        LoRAConfig(**kwargs)


def test_a_target_the_model_lacks_is_an_error(torch_threads):
    with pytest.raises(ConfigError, match="'gate' does not exist"):
        apply_lora(make("gpt2"), LoRAConfig(targets="gate"))
    model = make()
    apply_lora(model, LoRAConfig(targets="q"))
    with pytest.raises(ConfigError, match="already has LoRA"):
        apply_lora(model, LoRAConfig(targets="q"))
