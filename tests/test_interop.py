"""Hugging Face interop: import GPT-2 / Llama(-GQA) / Qwen2 folders built and saved by transformers,
match their logits (full forward, KV-cached decoding, left-padded batches), export back, and refuse
bad folders with one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import llmlab
from llmlab.errors import CheckpointError
from llmlab.interop import export_hf, import_hf

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

VOCAB = 520  # a little larger than the test tokenizer (at most 512 tokens), as real models pad their vocabularies
TOL = 1e-4


def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Weights with O(1) logits (HF's init gives ~0.02-scale logits that would match trivially);
    norm gains near 1 and non-zero biases so their mapping is tested too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            is_norm_gain = p.dim() == 1 and ("ln" in name or "norm" in name) and name.endswith("weight")
            p.copy_(1 + 0.1 * noise if is_norm_gain else 0.15 * noise)
    return model.eval()


def save_gpt2(path: Path, tokenizer, seed: int = 0, **overrides) -> torch.nn.Module:
    cfg = dict(vocab_size=VOCAB, n_positions=64, n_embd=64, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0)
    cfg.update(overrides)
    model = randomize(transformers.GPT2LMHeadModel(transformers.GPT2Config(**cfg)), seed)
    model.save_pretrained(path)
    if tokenizer is not None:
        tokenizer.backend.model.save(str(path))  # GPT-2 style vocab.json + merges.txt
    return model


def save_llama(path: Path, tokenizer, seed: int = 1, **overrides) -> torch.nn.Module:
    cfg = dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, rope_theta=5000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=0,
    )
    cfg.update(overrides)
    model = randomize(transformers.LlamaForCausalLM(transformers.LlamaConfig(**cfg)), seed)
    model.save_pretrained(path)
    if tokenizer is not None:
        hf_tok = transformers.PreTrainedTokenizerFast(
            tokenizer_object=tokenizer.backend, eos_token="<|endoftext|>", pad_token="<|pad|>"
        )
        hf_tok.save_pretrained(path)
    return model


def left_padded(batch: int = 3, length: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 500, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    for row, pad in enumerate((0, 4, 7)[:batch]):
        mask[row, :pad] = 0
        ids[row, :pad] = 1  # the pad id: any value, masked out
    return ids, mask


def positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory, small_tokenizer):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("hf")
    gpt2 = save_gpt2(root / "gpt2", small_tokenizer)
    llama = save_llama(root / "llama", small_tokenizer)
    import_hf(root / "gpt2", root / "gpt2-ckpt")
    import_hf(root / "llama", root / "llama-ckpt")
    return {"root": root, "gpt2": gpt2, "llama": llama}


FAMILIES = ("gpt2", "llama")


@pytest.mark.parametrize("family", FAMILIES)
def test_import_matches_transformers_logits(hf_models, family, small_tokenizer):
    model, tok = llmlab.load(hf_models["root"] / f"{family}-ckpt")
    ids = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours, theirs = model(ids).logits, hf_models[family](ids).logits
    assert theirs.std() > 0.3, "logits too small for the comparison to mean anything"
    assert (ours - theirs).abs().max() <= TOL
    assert tok is not None and tok.vocab_size == small_tokenizer.vocab_size


@pytest.mark.parametrize("family", FAMILIES)
def test_kv_cache_decoding_matches_transformers_full_forward(hf_models, family):
    model, _ = llmlab.load(hf_models["root"] / f"{family}-ckpt")
    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        full = hf_models[family](ids).logits
        cache = model.new_kv_cache(batch_size=2)
        steps = [model(ids[:, :10], kv_cache=cache).logits]  # prefill
        for t in range(10, 24):  # then one token at a time
            steps.append(model(ids[:, t:t + 1], kv_cache=cache).logits)
    assert cache.length == 24
    assert (torch.cat(steps, dim=1) - full).abs().max() <= TOL


@pytest.mark.parametrize("family", FAMILIES)
def test_left_padded_batch_matches_transformers_and_unpadded_rows(hf_models, family):
    model, _ = llmlab.load(hf_models["root"] / f"{family}-ckpt")
    ids, mask = left_padded()
    real = mask.bool()
    with torch.no_grad():
        ours = model(ids, attention_mask=mask).logits
        theirs = hf_models[family](ids, attention_mask=mask, position_ids=positions(mask)).logits
        assert (ours - theirs)[real].abs().max() <= TOL
        for row in range(ids.shape[0]):  # padding changes nothing for the real tokens
            alone = model(ids[row:row + 1][:, real[row]]).logits[0]
            assert (ours[row][real[row]] - alone).abs().max() <= TOL
        # Cached decoding of the padded batch: prefill 8 columns, then one column at a time.
        cache = model.new_kv_cache(batch_size=3)
        steps = [model(ids[:, :8], attention_mask=mask[:, :8], kv_cache=cache).logits]
        for t in range(8, ids.shape[1]):
            steps.append(model(ids[:, t:t + 1], attention_mask=mask[:, :t + 1], kv_cache=cache).logits)
    decoded = torch.cat(steps, dim=1)
    assert (decoded - ours)[real].abs().max() <= TOL


@pytest.mark.parametrize("family", FAMILIES)
def test_export_loads_in_transformers_with_equal_logits(hf_models, family, tmp_path):
    out = tmp_path / "exported"
    result = export_hf(hf_models["root"] / f"{family}-ckpt", out)
    assert result.architecture == ("GPT2LMHeadModel" if family == "gpt2" else "LlamaForCausalLM")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(reloaded).__name__ == result.architecture
    ids = torch.randint(0, VOCAB, (2, 30), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert (reloaded(ids).logits - hf_models[family](ids).logits).abs().max() <= TOL
    # The tokenizer travels too and encodes as llmlab's does.
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    _, ours = llmlab.load(hf_models["root"] / f"{family}-ckpt")
    text = "Once upon a time, Zoë met 東京 🙂"
    assert hf_tok(text)["input_ids"] == ours.encode(text)
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 0


@pytest.mark.parametrize("style", ["tiny", "gpt2-untied"])
def test_llmlab_models_export_to_transformers(style, small_tokenizer, tmp_path):
    """Models made here (llama-style GQA with tied embeddings; GPT-2 style with an untied head)."""
    from llmlab.config import preset
    from llmlab.model import TransformerLM

    if style == "tiny":
        cfg = preset("tiny", vocab_size=small_tokenizer.vocab_size, n_layer=2)
    else:
        cfg = preset("gpt2-12m", vocab_size=small_tokenizer.vocab_size, n_layer=2, d_model=64, n_head=4,
                     context_length=64, tie_embeddings=False)
    torch.manual_seed(0)
    model = randomize(TransformerLM(cfg), seed=7)
    llmlab.save_checkpoint(tmp_path / "ckpt", model, small_tokenizer)
    export_hf(tmp_path / "ckpt", tmp_path / "hf")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 33), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        ours = model(ids).logits
        assert ours.std() > 0.3
        assert (reloaded(ids).logits - ours).abs().max() <= TOL
    # and back again: import the export, get the same model
    import_hf(tmp_path / "hf", tmp_path / "again")
    again, _ = llmlab.load(tmp_path / "again")
    assert again.config == cfg
    with torch.no_grad():
        assert torch.equal(again(ids).logits, ours)


def test_qwen2_qkv_bias_imports_exactly(tmp_path, small_tokenizer):
    cfg = transformers.Qwen2Config(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True,
    )
    hf = randomize(transformers.Qwen2ForCausalLM(cfg), seed=2)
    hf.save_pretrained(tmp_path / "qwen")
    result = import_hf(tmp_path / "qwen", tmp_path / "ckpt")
    assert result.model_type == "qwen2" and any("bias" in n for n in result.notes)
    model, tok = llmlab.load(tmp_path / "ckpt")
    assert tok is None and model.config.attention_bias
    ids = torch.randint(0, VOCAB, (1, 20), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        assert (model(ids).logits - hf(ids).logits).abs().max() <= TOL


def test_mistral_sliding_window_is_imported_as_a_window(tmp_path):
    """(Logits past the window and generation: tests/test_sliding_window.py.)"""
    cfg = transformers.MistralConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, max_position_embeddings=64, sliding_window=16,
    )
    hf = randomize(transformers.MistralForCausalLM(cfg), seed=3)
    hf.save_pretrained(tmp_path / "mistral")
    result = import_hf(tmp_path / "mistral", tmp_path / "ckpt")
    assert result.config["context_length"] == 64 and result.config["sliding_window"] == 16
    assert any("sliding" in n for n in result.notes)
    model, _ = llmlab.load(tmp_path / "ckpt")
    ids = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        assert (model(ids).logits - hf(ids).logits).abs().max() <= TOL


def test_sharded_safetensors_and_original_gpt2_names(tmp_path):
    hf = save_gpt2(tmp_path / "src", None)
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="40KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    import_hf(tmp_path / "sharded", tmp_path / "a")
    # The original OpenAI-converted files: no "transformer." prefix, plus causal-mask buffers.
    from safetensors.torch import load_file, save_file

    old = tmp_path / "old"
    shutil.copytree(tmp_path / "src", old)
    state = {k.removeprefix("transformer."): v for k, v in load_file(str(old / "model.safetensors")).items()}
    state["h.0.attn.bias"] = torch.ones(1, 1, 64, 64).tril()
    save_file(state, str(old / "model.safetensors"), metadata={"format": "pt"})
    import_hf(old, tmp_path / "b")
    ids = torch.randint(0, VOCAB, (1, 16), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        want = hf(ids).logits
        for name in ("a", "b"):
            assert (llmlab.load(tmp_path / name)[0](ids).logits - want).abs().max() <= TOL


def test_pickle_weights_need_trust(tmp_path):
    hf = save_gpt2(tmp_path / "src", None)
    (tmp_path / "src" / "model.safetensors").unlink()
    torch.save(hf.state_dict(), tmp_path / "src" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="trust-pickle"):
        import_hf(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    import_hf(tmp_path / "src", tmp_path / "out", trust_pickle=True)
    ids = torch.randint(0, VOCAB, (1, 16), generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        assert (llmlab.load(tmp_path / "out")[0](ids).logits - hf(ids).logits).abs().max() <= TOL


def test_dtype_option_converts_the_weights(hf_models, tmp_path):
    result = import_hf(hf_models["root"] / "llama", tmp_path / "bf16", dtype="bfloat16")
    assert result.dtype == "bfloat16"
    model, _ = llmlab.load(tmp_path / "bf16")
    assert next(model.parameters()).dtype == torch.bfloat16
    with pytest.raises(llmlab.LLMLabError, match="unknown dtype"):
        import_hf(hf_models["root"] / "llama", tmp_path / "x", dtype="int8")


# ---------------------------------------------------------------------------- refusals
def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_export_refuses_configs_the_target_cannot_represent(tmp_path):
    from llmlab.config import preset
    from llmlab.model import TransformerLM

    cases = {
        "gpt2-rms": (preset("gpt2-12m", n_layer=1, d_model=32, n_head=2, vocab_size=300, norm="rmsnorm"), "LayerNorm"),
        "llama-learned": (preset("tiny", n_layer=1, vocab_size=300, position="learned"), "RoPE"),
        "llama-gelu": (preset("tiny", n_layer=1, vocab_size=300, mlp="gelu"), "SwiGLU"),
    }
    for name, (cfg, reason) in cases.items():
        llmlab.save_checkpoint(tmp_path / name, TransformerLM(cfg))
        with pytest.raises(CheckpointError, match=reason) as info:
            export_hf(tmp_path / name, tmp_path / f"{name}-hf")
        assert "cannot export" in _one_line(info)
        assert not (tmp_path / f"{name}-hf").exists()


def test_mismatched_hf_config_and_weights(tmp_path):
    save_gpt2(tmp_path / "src", None)
    config = json.loads((tmp_path / "src" / "config.json").read_text())
    cases = {
        "more-layers": ({"n_layer": 3}, "lacks weight 'transformer.h.2"),
        "fewer-layers": ({"n_layer": 1}, "unexpected weight 'transformer.h.1"),
        "wider": ({"n_embd": 128}, "has shape"),
        "untied": ({"tie_word_embeddings": False}, "lacks weight 'lm_head.weight'"),
    }
    for name, (change, message) in cases.items():
        shutil.copytree(tmp_path / "src", tmp_path / name)
        (tmp_path / name / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(CheckpointError, match=message) as info:
            import_hf(tmp_path / name, tmp_path / f"{name}-out")
        assert "do not match" in _one_line(info)


def test_truncated_or_missing_hf_weights(tmp_path):
    save_gpt2(tmp_path / "src", None)
    weights = tmp_path / "src" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
        import_hf(tmp_path / "src", tmp_path / "out")
    _one_line(info)
    weights.unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        import_hf(tmp_path / "src", tmp_path / "out")


def test_unsupported_or_unknown_folders(tmp_path):
    save_llama(tmp_path / "l", None)
    config = json.loads((tmp_path / "l" / "config.json").read_text())
    scaled = {**config, "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}}
    (tmp_path / "l" / "config.json").write_text(json.dumps(scaled))
    with pytest.raises(CheckpointError, match="RoPE scaling 'llama3'"):
        import_hf(tmp_path / "l", tmp_path / "out")
    (tmp_path / "l" / "config.json").write_text(json.dumps({**config, "head_dim": 32}))
    with pytest.raises(CheckpointError, match="head_dim 32"):
        import_hf(tmp_path / "l", tmp_path / "out")
    (tmp_path / "l" / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(CheckpointError, match="model_type 'bert' is not supported"):
        import_hf(tmp_path / "l", tmp_path / "out")
    save_gpt2(tmp_path / "g", None, activation_function="gelu")  # exact erf GELU
    with pytest.raises(CheckpointError, match="activation_function 'gelu'"):
        import_hf(tmp_path / "g", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        import_hf(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(CheckpointError, match="not found"):
        import_hf(tmp_path / "missing", tmp_path / "out")


def test_tokenizer_larger_than_the_model_vocab(tmp_path, small_tokenizer):
    save_gpt2(tmp_path / "src", small_tokenizer, vocab_size=300)
    n = small_tokenizer.vocab_size
    with pytest.raises(CheckpointError, match=f"{n} tokens but the model's vocab_size is 300") as info:
        import_hf(tmp_path / "src", tmp_path / "out")
    _one_line(info)


def test_destination_safety(hf_models, tmp_path):
    src = hf_models["root"] / "gpt2"
    with pytest.raises(CheckpointError, match="overlaps"):
        import_hf(src, src)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="already exists"):
        import_hf(src, precious)
    with pytest.raises(CheckpointError, match="already exists"):
        export_hf(hf_models["root"] / "gpt2-ckpt", precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    # Not even a previous output is replaced (it may be a trained checkpoint, or a downloaded model).
    import_hf(src, tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="already exists"):
        import_hf(src, tmp_path / "ckpt")
    (tmp_path / "empty").mkdir()
    export_hf(tmp_path / "ckpt", tmp_path / "empty")  # an empty directory is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "empty", "precious"]


def test_hf_folder_passed_to_load_says_how_to_convert(hf_models):
    with pytest.raises(CheckpointError, match="import-hf") as info:
        llmlab.load(hf_models["root"] / "llama")
    _one_line(info)


# ---------------------------------------------------------------------------- family bundles
LLAMA_STYLE = dict(
    vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=64,
)
# Per registered model_type, a small Hugging Face config that uses every row of its table.
TABLE_CASES = {
    "gpt2": dict(n_positions=64, n_embd=64, n_layer=2, n_head=4, vocab_size=VOCAB, tie_word_embeddings=False),
    "llama": dict(LLAMA_STYLE, attention_bias=True, mlp_bias=True, tie_word_embeddings=False),
    "mistral": dict(LLAMA_STYLE, sliding_window=16, tie_word_embeddings=False),
    "qwen2": dict(LLAMA_STYLE, tie_word_embeddings=True),
    "mixtral": dict(LLAMA_STYLE, num_local_experts=3, num_experts_per_tok=2, sliding_window=16, tie_word_embeddings=False),
}


def test_every_registered_family_round_trips_through_its_table(tmp_path):
    """HF state dict -> llmlab -> HF gives the same names and equal tensors, for every family."""
    from safetensors.torch import load_file

    from llmlab.interop.family import families, weights_from_hf, weights_to_hf
    from llmlab.interop.weights import WeightSource

    registered = {t: f for f in families().values() for t in f.model_types}
    assert set(registered) == set(TABLE_CASES), "give each registered model_type a case here"
    for model_type, overrides in TABLE_CASES.items():
        family = registered[model_type]
        config = transformers.AutoConfig.for_model(model_type, **overrides)
        hf = randomize(transformers.AutoModelForCausalLM.from_config(config), seed=12)
        assert type(hf).__name__ == family.architecture
        hf.save_pretrained(tmp_path / model_type)
        stored = load_file(str(tmp_path / model_type / "model.safetensors"))
        hf_config = json.loads((tmp_path / model_type / "config.json").read_text())
        cfg = family.config_from_hf(hf_config, [])
        ours = weights_from_hf(family, WeightSource(tmp_path / model_type), cfg)
        back = weights_to_hf(family, ours, cfg)
        assert sorted(back) == sorted(stored), model_type
        assert all(torch.equal(back[name], stored[name]) for name in stored), model_type
        assert any(name.endswith("bias") for name in ours) == (model_type not in ("mistral", "mixtral"))


@pytest.mark.parametrize("family", ["mistral", "qwen2"])
def test_llama_derived_families_export_to_their_own_architecture(family, tmp_path):
    from llmlab.config import preset
    from llmlab.model import TransformerLM

    cfg = preset("tiny", vocab_size=300, n_layer=2, context_length=64, family=family,
                 attention_bias=family == "qwen2", tie_embeddings=False)
    model = randomize(TransformerLM(cfg), seed=13)
    if family == "qwen2":  # Qwen2 has no output-projection bias: a non-zero one cannot be exported
        llmlab.save_checkpoint(tmp_path / "biased", model)
        with pytest.raises(CheckpointError, match="attn.out.bias.*not zero") as info:
            export_hf(tmp_path / "biased", tmp_path / "biased-hf")
        assert "cannot export" in _one_line(info) and not (tmp_path / "biased-hf").exists()
        with torch.no_grad():
            for block in model.blocks:
                block.attn.out.bias.zero_()
    llmlab.save_checkpoint(tmp_path / "ckpt", model)
    result = export_hf(tmp_path / "ckpt", tmp_path / "hf")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert type(reloaded).__name__ == result.architecture and result.model_type == family
    ids = torch.randint(0, cfg.vocab_size, (2, 40), generator=torch.Generator().manual_seed(14))
    with torch.no_grad():
        ours = model(ids).logits
        assert ours.std() > 0.3 and (reloaded(ids).logits - ours).abs().max() <= TOL


def test_unknown_family_is_refused_in_one_line(tmp_path):
    from llmlab.config import preset
    from llmlab.model import TransformerLM

    llmlab.save_checkpoint(tmp_path / "ckpt", TransformerLM(preset("tiny", n_layer=1, vocab_size=300, family="bert")))
    with pytest.raises(CheckpointError, match="unknown family 'bert'.*gpt2, llama") as info:
        export_hf(tmp_path / "ckpt", tmp_path / "hf")
    assert "cannot export" in _one_line(info) and not (tmp_path / "hf").exists()
