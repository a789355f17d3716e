"""Sliding-window attention (Mistral's `sliding_window`, chosen per layer): the training mask, the
rolling KV cache (equal to full attention under a window mask, memory flat), the engine, and
logits and greedy generation equal to `transformers`' Mistral and Qwen2 past the window."""

from __future__ import annotations

import pytest
import torch

import llmlab
from llmlab.interop import export_hf, import_hf
from llmlab.config import ModelConfig
from llmlab.errors import ConfigError
from llmlab.infer import Engine
from llmlab.model import TransformerLM

W = 6  # the window in these tests: a few tokens, so every sequence here runs far past it
VOCAB = 300


def make_model(seed: int = 0, dtype=torch.float64, **overrides) -> TransformerLM:
    """Random weights with a large std (as in test_infer_engine): near-ties cannot hide a bug."""
    torch.manual_seed(seed)
    cfg = dict(vocab_size=VOCAB, context_length=96, n_layer=2, n_head=4, n_kv_head=2, d_model=64, init_std=0.2,
               sliding_window=W)
    cfg.update(overrides)
    return TransformerLM(ModelConfig(**cfg)).to(dtype).eval()


def window_reference(model: TransformerLM, ids: torch.Tensor) -> torch.Tensor:
    """Logits of the same weights with every layer on full attention, given an explicit window mask
    (what sliding-window attention means: query q sees keys q - W < k <= q)."""
    cfg = model.config
    assert set(cfg.attention_windows()) == {W}
    full = TransformerLM(cfg.replace(sliding_window=None)).to(next(model.parameters()).dtype).eval()
    full.load_state_dict(model.state_dict())
    T = ids.shape[1]
    q, k = torch.arange(T)[:, None], torch.arange(T)[None]
    return full(ids, attention_mask=((k <= q) & (k > q - W))[None, None]).logits


def naive_greedy(model, ids: list[int], n: int) -> list[int]:
    ids, out = list(ids), []
    for _ in range(n):
        t = int(model(torch.tensor([ids])).logits[0, -1].argmax())
        out.append(t)
        ids.append(t)
    return out


# ---------------------------------------------------------------------------- config
def test_config_per_layer_pattern_and_bad_input():
    cfg = ModelConfig(n_layer=5, sliding_window=8, layer_attention=["sliding", "sliding", "full"])
    assert cfg.attention_windows() == [8, 8, None, 8, 8]  # the pattern repeats over the layers
    assert ModelConfig(n_layer=3, sliding_window=8).attention_windows() == [8, 8, 8]  # Mistral: every layer
    assert ModelConfig(n_layer=3).attention_windows() == [None] * 3
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    for bad, match in (
        (dict(layer_attention=["sliding"]), "sliding_window is not set"),
        (dict(sliding_window=8, layer_attention=["local"]), "one of"),
        (dict(sliding_window=8, layer_attention="sliding"), "must be a list"),
        (dict(sliding_window=8, layer_attention=["full"] * 5), "must be a list"),
        (dict(sliding_window=0), "positive"),
    ):
        with pytest.raises(ConfigError, match=match) as info:
            ModelConfig(n_layer=4, **bad)
        assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------- training: the mask
def test_full_forward_is_full_attention_under_a_window_mask(torch_threads):
    model = make_model()
    ids = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(ids).logits
        assert torch.allclose(ours, window_reference(model, ids), atol=1e-10)
        # The window really hides something: plain causal attention differs past the window only.
        plain = TransformerLM(model.config.replace(sliding_window=None)).double().eval()
        plain.load_state_dict(model.state_dict())
        causal = plain(ids).logits
    assert torch.allclose(ours[:, :W], causal[:, :W], atol=1e-10)
    assert (ours[:, W:] - causal[:, W:]).abs().amax(-1).min() > 1e-3


def test_a_token_out_of_the_window_does_not_reach_the_loss():
    """One layer: position q's logits depend on tokens q - W + 1 .. q only, so the training loss
    (the one loop trains the model through this mask) gets no gradient from older tokens."""
    model = make_model(n_layer=1, dtype=torch.float32)
    ids = torch.randint(0, VOCAB, (1, 30), generator=torch.Generator().manual_seed(2))
    emb = model.embed(ids).detach().requires_grad_(True)
    logits = model.lm_head(model.final_norm(model.blocks[0](emb, model.rope(torch.arange(30)[None], emb.dtype),
                                                              model.layer_masks(None, None, 0, 30, "cpu")[0],
                                                              None, 0, False)[0]))
    logits[0, 20].sum().backward()
    reach = emb.grad[0].abs().sum(-1) > 0
    assert reach.nonzero().flatten().tolist() == list(range(20 - W + 1, 21))
    # And the loss trains: a step through model(ids, targets=...) changes the weights.
    loss = model(ids[:, :-1], targets=ids[:, 1:]).loss
    loss.backward()
    assert model.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------- the rolling cache
@pytest.mark.parametrize("pattern", [None, ["sliding", "full"]])
def test_rolling_cache_equals_full_attention_with_a_window_mask(pattern, torch_threads):
    model = make_model(layer_attention=pattern)
    ids = torch.randint(0, VOCAB, (2, 50), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model(ids).logits
        if pattern is None:
            assert torch.allclose(full, window_reference(model, ids), atol=1e-10)
        cache = model.new_kv_cache(batch_size=2)
        steps = [model(ids[:, :9], kv_cache=cache).logits] + [model(ids[:, t:t + 1], kv_cache=cache).logits
                                                              for t in range(9, 50)]
        assert torch.allclose(torch.cat(steps, 1), full, atol=1e-10)
        # Chunks shorter and longer than the window, wrapping the rolling buffer mid-chunk.
        cache = model.new_kv_cache(batch_size=2)
        chunks = [model(ids[:, a:b], kv_cache=cache).logits for a, b in ((0, 2), (2, 11), (11, 15), (15, 16), (16, 50))]
        assert torch.allclose(torch.cat(chunks, 1), full, atol=1e-10)
    slots = [k.shape[2] for k in cache.keys]
    assert slots == [W if w else 96 for w in model.config.attention_windows()]


def test_rolling_cache_with_left_padding_equals_unpadded_rows(torch_threads):
    model = make_model()
    g = torch.Generator().manual_seed(4)
    rows = [torch.randint(0, VOCAB, (n,), generator=g) for n in (20, 13, 8)]
    P, new = 20, 15
    ids = torch.zeros(3, P, dtype=torch.long)
    mask = torch.zeros(3, P + new, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, P - len(r):] = r
        mask[i, P - len(r):] = 1
    with torch.no_grad():
        cache = model.new_kv_cache(batch_size=3, max_len=P + new)
        logits = model(ids, attention_mask=mask[:, :P], kv_cache=cache).logits[:, -1]
        outs = [[] for _ in rows]
        for t in range(new):
            nxt = logits.argmax(-1)
            for i in range(3):
                outs[i].append(int(nxt[i]))
            pos = (mask[:, :P + t + 1].cumsum(-1) - 1)[:, -1:]
            logits = model(nxt[:, None], attention_mask=mask[:, :P + t + 1], position_ids=pos, kv_cache=cache).logits[:, -1]
        for r, out in zip(rows, outs):
            assert out == naive_greedy(model, r.tolist(), new)


def test_rolling_cache_memory_stays_flat_for_4x_the_window(torch_threads):
    model = make_model(n_layer=2, context_length=128)
    sizes = []
    with torch.no_grad():
        cache = model.new_kv_cache(batch_size=1)
        token = torch.tensor([[5]])
        for _ in range(4 * W + 1):
            token = model(token, kv_cache=cache).logits[:, -1:].argmax(-1)
            sizes.append(cache.nbytes())
    assert cache.length == 4 * W + 1 and len(set(sizes)) == 1
    cfg = model.config
    assert sizes[0] == 2 * cfg.n_layer * cfg.n_kv_head * W * cfg.head_dim * 8  # keys + values, float64
    full = make_model(n_layer=2, context_length=128, sliding_window=None).new_kv_cache(batch_size=1)
    assert full.nbytes() == sizes[0] * 128 // W
    # The engine: the same bytes at every step of a generation 4x the window long.
    engine = Engine(model, None)
    engine.add_request([5, 6, 7], temperature=0, max_new_tokens=4 * W, ignore_eos=True)
    seen = set()
    while engine.has_unfinished():
        engine.step()
        seen.add(engine.cache_bytes)
    assert seen == {sizes[0], 0}  # 0: after the request finished


# ---------------------------------------------------------------------------- the engine
@pytest.mark.parametrize("pattern", [None, ["full", "sliding"]])
def test_engine_greedy_with_continuous_batching_equals_naive_greedy(pattern, torch_threads):
    """Rows join a running batch (their rolling buffers merged right-aligned), leave it, and the
    cache compacts and grows: every output equals greedy decoding without a cache."""
    model = make_model(layer_attention=pattern, context_length=64)
    engine = Engine(model, None, max_batch_size=3)
    g = torch.Generator().manual_seed(5)
    prompts = [torch.randint(0, VOCAB, (n,), generator=g).tolist() for n in (3, 17, 9, 1, 12)]
    budgets = [30, 5, 20, 9, 40]
    expected = [naive_greedy(model, p, n) for p, n in zip(prompts, budgets)]
    ids = {engine.add_request(p, temperature=0, max_new_tokens=n): i for i, (p, n) in enumerate(zip(prompts[:2], budgets))}
    results, steps, slots = {}, 0, set()
    while engine.has_unfinished():
        steps += 1
        if steps == 4:
            for i in range(2, 5):
                ids[engine.add_request(prompts[i], temperature=0, max_new_tokens=budgets[i])] = i
        for out in engine.step():
            if out.finished:
                results[ids[out.request_id]] = out.result.token_ids
        if engine._batch is not None:
            cache = engine._batch.cache
            slots |= {k.shape[2] for k, w in zip(cache.keys, cache.windows) if w}
    assert [results[i] for i in range(5)] == expected
    assert slots == {W}  # sliding layers never held more than the window


def test_engine_cache_shorter_than_the_window_becomes_a_rolling_buffer(torch_threads):
    """A first request needs fewer columns than the window (a plain buffer); a longer one joins, the
    batch's cache grows past the window and its windowed layer turns into a rolling buffer."""
    model = make_model(layer_attention=["sliding", "full"], context_length=64, sliding_window=20)
    engine = Engine(model, None, max_batch_size=2)
    g = torch.Generator().manual_seed(8)
    prompts, budgets = [torch.randint(0, VOCAB, (3,), generator=g).tolist(),
                        torch.randint(0, VOCAB, (5,), generator=g).tolist()], [12, 50]
    ids = {engine.add_request(prompts[0], temperature=0, max_new_tokens=budgets[0]): 0}
    results, layouts, steps = {}, [], 0
    while engine.has_unfinished():
        steps += 1
        if steps == 3:
            ids[engine.add_request(prompts[1], temperature=0, max_new_tokens=budgets[1])] = 1
        for out in engine.step():
            if out.finished:
                results[ids[out.request_id]] = out.result.token_ids
        if engine._batch is not None:
            layouts.append(engine._batch.cache.keys[0].shape[2])
    assert layouts[0] == 15 and layouts[-1] == 20  # 3 + 12 columns, then 20 rolling slots
    assert [results[0], results[1]] == [naive_greedy(model, p, n) for p, n in zip(prompts, budgets)]


# ---------------------------------------------------------------------------- transformers' Mistral and Qwen2
transformers = pytest.importorskip("transformers")


# Mistral slides every layer; Qwen2 chooses per layer (here the first of two layers).
HF_WINDOWS = {
    "mistral": dict(sliding_window=W),
    "qwen2": dict(use_sliding_window=True, sliding_window=W, layer_types=["sliding_attention", "full_attention"]),
}


def hf_model(kind: str, seed: int = 3):
    transformers.logging.set_verbosity_error()
    cfg = transformers.AutoConfig.for_model(
        kind, vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=96, rope_theta=5000.0, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=0, pad_token_id=0, **HF_WINDOWS[kind],
    )
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # O(1) logits (the default init gives near-uniform ones that match trivially)
        for name, p in model.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if "norm" in name else 0.15 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("kind", ["mistral", "qwen2"])
def test_import_matches_transformers_past_the_window(kind, tmp_path, torch_threads):
    hf = hf_model(kind)
    hf.save_pretrained(tmp_path / "hf")
    result = import_hf(tmp_path / "hf", tmp_path / "ckpt")
    assert result.config["sliding_window"] == W and result.config["context_length"] == 96
    model, _ = llmlab.load(tmp_path / "ckpt")
    assert model.config.family == kind
    assert model.config.attention_windows() == ([W, W] if kind == "mistral" else [W, None])
    ids = torch.randint(2, VOCAB, (2, 40), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        ours, theirs = model(ids).logits, hf(ids).logits
        assert (ours - theirs).abs().max() <= 1e-4
        # The window matters at this length: without it, llmlab's logits differ.
        plain = TransformerLM(model.config.replace(sliding_window=None, layer_attention=None)).eval()
        plain.load_state_dict(model.state_dict())
        assert (plain(ids).logits - theirs).abs().max() > 1e-2
        # Greedy generation 4x past the window: the same tokens as transformers.generate.
        prompt = ids[:1, :5]
        expected = hf.generate(prompt, max_new_tokens=4 * W, do_sample=False, min_new_tokens=4 * W)[0, 5:].tolist()
    got = Engine(model).generate(prompt[0].tolist(), temperature=0, max_new_tokens=4 * W, ignore_eos=True)
    assert got.token_ids == expected


def test_export_carries_the_window_and_refusals(tmp_path):
    from llmlab.errors import CheckpointError

    model = make_model(dtype=torch.float32, family="mistral", tie_embeddings=False)
    llmlab.save_checkpoint(tmp_path / "ckpt", model)
    export_hf(tmp_path / "ckpt", tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert type(hf).__name__ == "MistralForCausalLM" and hf.config.sliding_window == W
    ids = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert (hf(ids).logits - model(ids).logits).abs().max() <= 1e-4
    # Qwen2 carries a per-layer choice (layer_types).
    mixed = make_model(dtype=torch.float32, family="qwen2", attention_bias=True, tie_embeddings=False,
                       layer_attention=["full", "sliding"], seed=1)
    with torch.no_grad():
        for block in mixed.blocks:
            block.attn.out.bias.zero_()  # Qwen2 has no output-projection bias
    llmlab.save_checkpoint(tmp_path / "qwen", mixed)
    export_hf(tmp_path / "qwen", tmp_path / "qwen-hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "qwen-hf").eval()
    assert hf.config.layer_types == ["full_attention", "sliding_attention"] and hf.config.sliding_window == W
    with torch.no_grad():
        assert (hf(ids).logits - mixed(ids).logits).abs().max() <= 1e-4
    # What Hugging Face layouts cannot say: a window on Llama, a Mistral with some full layers.
    for name, changes, match in (
        ("llama", dict(family="llama"), "sliding_window is 6.*export as family mistral"),
        ("mixed", dict(layer_attention=["sliding", "full"]), "mixes full and sliding"),
    ):
        other = TransformerLM(model.config.replace(**changes))
        llmlab.save_checkpoint(tmp_path / name, other)
        with pytest.raises(CheckpointError, match=match) as info:
            export_hf(tmp_path / name, tmp_path / f"{name}-hf")
        assert "\n" not in str(info.value) and not (tmp_path / f"{name}-hf").exists()
