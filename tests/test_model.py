"""The model: the lesson's MultiHeadAttention and TransformerBlock, the language model's loss,
masks, KV cache and attention weights, initialisation, presets and parameter / FLOP accounting."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from llmlab import MultiHeadAttention, TransformerBlock
from llmlab.config import GPT3_PAPER_PARAMS, PRESETS, ModelConfig, preset
from llmlab.errors import ConfigError
from llmlab.model import IGNORE_INDEX, TransformerLM, count_parameters, flops_per_token, kaplan_flops_per_token

TOL = 1e-5


@pytest.fixture(autouse=True)
def _threads(torch_threads):
    torch.manual_seed(0)


def small(style: str, **overrides) -> TransformerLM:
    base = "tiny" if style == "llama" else "gpt2-12m"
    cfg = preset(base, vocab_size=300, n_layer=2, d_model=64, n_head=4, context_length=64, **overrides)
    return TransformerLM(cfg).eval()


# ---------------------------------------------------------------------------- the lesson's modules
def causal(T: int) -> torch.Tensor:
    return torch.tril(torch.ones(T, T)).view(1, 1, T, T)


def test_lesson_attention_weights_sum_to_one_and_shapes():
    mha = MultiHeadAttention(d_model=32, num_heads=4).eval()
    x = torch.randn(2, 7, 32)
    out, weights = mha(x, x, x)
    assert out.shape == (2, 7, 32) and weights.shape == (2, 4, 7, 7)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 7), atol=1e-6)
    assert (weights >= 0).all()
    q = torch.randn(2, 3, 32)  # cross-attention: 3 queries over 7 keys
    out, weights = mha(q, x, x)
    assert out.shape == (2, 3, 32) and weights.shape == (2, 4, 3, 7)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(30, 4)


def test_lesson_causal_mask_blocks_future_positions():
    mha = MultiHeadAttention(d_model=32, num_heads=4).eval()
    x = torch.randn(1, 6, 32)
    out, weights = mha(x, x, x, mask=causal(6))
    future = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
    assert weights[..., future].max() < 1e-6  # masked keys get ~0 weight
    assert torch.allclose(weights.sum(-1), torch.ones(1, 4, 6), atol=1e-6)
    # Changing the future does not change the past: perturb the last three positions.
    y = x.clone()
    y[:, 3:] = torch.randn(1, 3, 32)
    out2, _ = mha(y, y, y, mask=causal(6))
    assert torch.allclose(out[:, :3], out2[:, :3], atol=1e-6)
    assert not torch.allclose(out[:, 3:], out2[:, 3:], atol=1e-3)


def test_lesson_padding_mask_hides_keys():
    mha = MultiHeadAttention(d_model=32, num_heads=4).eval()
    x = torch.randn(2, 5, 32)
    keep = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]).view(2, 1, 1, 5)
    out, weights = mha(x, x, x, mask=keep)
    assert weights[1, :, :, 3:].max() < 1e-6 and weights[0, :, :, 3:].min() > 0
    y = x.clone()
    y[1, 3:] = 100 * torch.randn(2, 32)  # garbage in the padded positions
    out2, _ = mha(y, y, y, mask=keep)
    assert torch.allclose(out[1, :3], out2[1, :3], atol=1e-5)


def test_lesson_transformer_block_is_post_norm_with_relu_ffn():
    block = TransformerBlock(d_model=32, num_heads=4, d_ff=64, dropout=0.1)
    assert isinstance(block.feed_forward[1], torch.nn.ReLU) and block.feed_forward[0].out_features == 64
    block.eval()
    x = torch.randn(3, 9, 32)
    y = block(x, mask=causal(9))
    assert y.shape == (3, 9, 32)
    # Post-norm: the output is LayerNorm'ed (gain 1, bias 0 at init), so each position has mean 0, std 1.
    assert torch.allclose(y.mean(-1), torch.zeros(3, 9), atol=1e-5)
    assert torch.allclose(y.std(-1, unbiased=False), torch.ones(3, 9), atol=1e-3)
    block.train()
    assert not torch.equal(block(x), block(x))  # dropout active in training


# ---------------------------------------------------------------------------- the language model
@pytest.mark.parametrize("style", ["llama", "gpt2"])
def test_forward_shapes_and_loss_is_shifted_cross_entropy(style):
    model = small(style)
    ids = torch.randint(0, 300, (2, 10))
    labels = ids.clone()
    labels[0, :4] = IGNORE_INDEX  # e.g. a prompt that is not trained on
    out = model(ids, labels=labels)
    assert out.logits.shape == (2, 10, 300)
    manual = F.cross_entropy(out.logits[:, :-1].reshape(-1, 300), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    assert torch.allclose(out.loss, manual, atol=1e-6)
    assert abs(out.loss.item() - math.log(300)) < 0.5  # near-uniform predictions at init
    # The already-shifted `targets` path gives the same loss.
    targets = torch.cat([labels[:, 1:], torch.full((2, 1), IGNORE_INDEX)], dim=1)
    assert torch.allclose(model(ids, targets=targets).loss, out.loss, atol=1e-6)
    out.loss.backward()
    assert model.embed.weight.grad is not None and model.embed.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="num_logits_to_keep"):
        model(ids, labels=labels, num_logits_to_keep=1)
    assert model(ids, num_logits_to_keep=1).logits.shape == (2, 1, 300)


@pytest.mark.parametrize("style", ["llama", "gpt2"])
def test_kv_cache_prefill_and_decode_equal_full_forward(style):
    model = small(style)
    ids = torch.randint(0, 300, (2, 20))
    with torch.no_grad():
        full = model(ids).logits
        cache = model.new_kv_cache(batch_size=2)
        parts = [model(ids[:, :7], kv_cache=cache).logits]
        parts += [model(ids[:, t:t + 1], kv_cache=cache).logits for t in range(7, 20)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=TOL)
    # Several tokens at once after a prefill (speculative-style chunks) too.
    with torch.no_grad():
        cache = model.new_kv_cache(batch_size=2)
        chunks = [model(ids[:, a:b], kv_cache=cache).logits for a, b in ((0, 5), (5, 12), (12, 20))]
    assert torch.allclose(torch.cat(chunks, 1), full, atol=TOL)
    with pytest.raises(ValueError, match="context length"):
        model(torch.zeros(1, 65, dtype=torch.long))


@pytest.mark.parametrize("style", ["llama", "gpt2"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batches_equal_unpadded_rows(style, side):
    model = small(style)
    lengths = [9, 5, 2]
    rows = [torch.randint(0, 300, (n,)) for n in lengths]
    width = max(lengths)
    ids = torch.zeros(3, width, dtype=torch.long)
    mask = torch.zeros(3, width, dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        ids[i, span], mask[i, span] = r, 1
    with torch.no_grad():
        batch = model(ids, attention_mask=mask).logits
        for i, r in enumerate(rows):
            alone = model(r[None]).logits[0]
            assert torch.allclose(batch[i][mask[i].bool()], alone, atol=TOL)
    assert torch.isfinite(batch).all()  # padding queries do not produce NaNs


def test_attention_weights_path_matches_fused_path():
    model = small("llama")
    ids = torch.randint(0, 300, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, :5] = 0
    with torch.no_grad():
        fused = model(ids, attention_mask=mask).logits
        out = model(ids, attention_mask=mask, output_attentions=True)
    assert torch.allclose(out.logits, fused, atol=TOL)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 4, 12, 12)
    w = out.attentions[0]
    assert torch.allclose(w.sum(-1), torch.ones(2, 4, 12), atol=1e-5)
    assert w[0].triu(diagonal=1).abs().max() == 0  # causal
    assert w[1, :, 5:, :5].abs().max() == 0  # padding keys hidden from real queries


def test_gpt2_initialisation_scales_residual_projections():
    cfg = preset("gpt2-12m", n_layer=8, vocab_size=1000)
    model = TransformerLM(cfg)
    block = model.blocks[0]
    assert abs(block.attn.qkv.weight.std().item() - 0.02) < 0.002
    expected = 0.02 / math.sqrt(2 * 8)
    for proj in (block.attn.out, block.mlp.down):
        assert abs(proj.weight.std().item() - expected) < 0.1 * expected
    assert block.attn.qkv.bias.abs().max() == 0
    assert model.lm_head.weight is model.embed.weight  # tied


# ---------------------------------------------------------------------------- presets and accounting
def test_tiny_preset_is_about_one_million_parameters():
    cfg = preset("tiny")
    n = TransformerLM(cfg).num_parameters()
    assert 0.9e6 <= n <= 1.2e6
    assert n == count_parameters(cfg).total


@pytest.mark.parametrize("name", ["tiny", "mini", "gpt2-12m"])
def test_accounting_matches_the_built_model(name):
    cfg = preset(name)
    model = TransformerLM(cfg)
    counted = count_parameters(cfg)
    assert counted.total == model.num_parameters()
    assert counted.non_embedding == model.num_parameters(exclude_embeddings=True)


def test_accounting_with_gqa_untied_head_and_biases():
    cfg = preset("tiny", n_kv_head=1, tie_embeddings=False, attention_bias=True, mlp_bias=True)
    assert count_parameters(cfg).total == TransformerLM(cfg).num_parameters()


@pytest.mark.parametrize("name", sorted(GPT3_PAPER_PARAMS))
def test_gpt3_presets_match_the_paper(name):
    total = count_parameters(preset(name)).total
    assert abs(total / GPT3_PAPER_PARAMS[name] - 1) < 0.02, f"{name}: {total:.4g} vs {GPT3_PAPER_PARAMS[name]:.4g}"


def test_all_presets_build_valid_configs():
    for name in PRESETS:
        cfg = preset(name)
        assert cfg.d_model % cfg.n_head == 0 and count_parameters(cfg).total > 0


def test_flops_per_token_matches_counted_matmul_flops():
    """Count the FLOPs torch actually runs (matmuls and attention) and compare with the formula."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = preset("tiny", vocab_size=512, context_length=128)
    model = TransformerLM(cfg)
    T = 128
    ids = torch.randint(0, 512, (1, T))
    # The explicit attention path (same maths as the fused kernel, which the counter cannot see into).
    with FlopCounterMode(display=False) as fwd:
        model(ids, output_attentions=True)
    with FlopCounterMode(display=False) as both:
        model(ids, labels=ids, output_attentions=True).loss.backward()
    # Norm gains are parameters but not matmul FLOPs: the formula overcounts them by ~0.1% here.
    assert fwd.get_total_flops() / T == pytest.approx(flops_per_token(cfg, T, training=False), rel=0.005)
    assert both.get_total_flops() / T == pytest.approx(flops_per_token(cfg, T, training=True), rel=0.005)


def test_flops_per_token_for_gpt3_175b():
    cfg = preset("gpt3-175b")
    n = count_parameters(cfg).non_embedding
    assert kaplan_flops_per_token(cfg) == 6 * n
    attention = 3 * 4 * cfg.n_layer * 2048 * cfg.d_model
    head = 6 * cfg.vocab_size * cfg.d_model
    assert flops_per_token(cfg) == 6 * n + attention + head
    assert flops_per_token(cfg, seq_len=1024) < flops_per_token(cfg)
    assert flops_per_token(cfg) == pytest.approx(1.08e12, rel=0.01)  # ~6 x 175e9 plus attention and head


def test_unknown_preset_and_bad_configs():
    with pytest.raises(ConfigError, match="unknown preset 'gpt5'.*tiny") as info:
        preset("gpt5")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig(d_model=100, n_head=3)
    with pytest.raises(ConfigError, match="multiple of n_kv_head"):
        ModelConfig(n_head=4, n_kv_head=3)
    with pytest.raises(ConfigError, match="unknown model config field"):
        ModelConfig.from_dict({"n_layers": 2})
    with pytest.raises(ConfigError, match="norm must be one of"):
        ModelConfig(norm="batchnorm")


def test_configs_written_with_the_removed_block_field_still_load(tmp_path):
    """`block` was removed (it held the one kind there was and nothing read it); old files still load."""
    old = dict(preset("tiny").to_dict(), block="transformer")
    (tmp_path / "config.json").write_text(json.dumps(old))
    cfg = ModelConfig.load(tmp_path / "config.json")
    assert cfg == preset("tiny") and "block" not in cfg.to_dict()
    with pytest.raises(ConfigError, match="unknown model config field.*block") as info:
        ModelConfig.from_dict(dict(old, block="moe"))  # never valid; not silently dropped
    assert "\n" not in str(info.value)
