"""GGUF export: metadata, tokenizer and tensors round-trip through the `gguf` package's reader
(llama.cpp's own), refusals are one line, and llama.cpp itself (llama-cpp-python, where installed)
generates the same greedy tokens as llmlab from the exported file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import train_small_lm

import llmlab
from llmlab.cli.main import main
from llmlab.config import preset
from llmlab.errors import CheckpointError, OutputError
from llmlab.interop.gguf_export import export_gguf, rotary_rows
from llmlab.model import TransformerLM

gguf = pytest.importorskip("gguf")

VOCAB = 520  # more than the tokenizer's (at most 512): the file pads the vocabulary with unused tokens
STYLES = {
    "llama": dict(n_layer=2, d_model=64, n_head=4, n_kv_head=2, context_length=64, tie_embeddings=False),
    "gpt2": dict(n_layer=2, d_model=64, n_head=4, context_length=64),
}


def random_checkpoint(path, tokenizer, style: str):
    torch.manual_seed(0)
    base = "tiny" if style == "llama" else "gpt2-12m"
    model = TransformerLM(preset(base, vocab_size=VOCAB, **STYLES[style]))
    with torch.no_grad():  # non-trivial norm gains and biases, so their mapping is tested too
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1 + 0.1 * torch.randn_like(p) if name.endswith("norm.weight") else 0.1 * torch.randn_like(p))
    llmlab.save_checkpoint(path, model, tokenizer)
    return model


def read(path) -> tuple[dict, dict]:
    reader = gguf.GGUFReader(path)
    fields = {name: f.contents() for name, f in reader.fields.items()}
    return fields, {t.name: t for t in reader.tensors}


def as_array(t) -> np.ndarray:
    """A reader tensor as float32 in numpy's [rows, columns] order (GGUF lists shapes reversed)."""
    data = gguf.quants.dequantize(t.data, t.tensor_type)
    return np.asarray(data, dtype=np.float32).reshape(tuple(int(n) for n in reversed(t.shape)))


@pytest.mark.parametrize("style", ["llama", "gpt2"])
def test_metadata_tokenizer_and_tensors_round_trip_through_the_gguf_reader(style, tmp_path, small_tokenizer):
    model = random_checkpoint(tmp_path / "ckpt", small_tokenizer, style)
    cfg, state = model.config, model.state_dict()
    tols = {"f32": 0.0, "f16": 1e-3, "q8_0": 2e-2}
    for quantize, tol in tols.items():
        result = export_gguf(tmp_path / "ckpt", tmp_path / f"m-{quantize}.gguf", quantize)
        fields, tensors = read(tmp_path / f"m-{quantize}.gguf")
        arch = fields["general.architecture"]
        assert arch == style == result.architecture
        assert fields[f"{arch}.context_length"] == 64 and fields[f"{arch}.block_count"] == 2
        assert fields[f"{arch}.embedding_length"] == 64 and fields[f"{arch}.feed_forward_length"] == cfg.d_ff
        assert fields[f"{arch}.attention.head_count"] == 4
        assert fields["general.file_type"] == {"f32": 0, "f16": 1, "q8_0": 7}[quantize]
        if style == "llama":
            assert fields["llama.attention.head_count_kv"] == 2 and fields["llama.rope.dimension_count"] == 16
            assert fields["llama.rope.freq_base"] == cfg.rope_theta
            assert fields["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(cfg.norm_eps)
        else:
            assert fields["gpt2.attention.layer_norm_epsilon"] == pytest.approx(cfg.norm_eps)
        # The tokenizer: llama.cpp's byte-level BPE ("gpt2") vocabulary, padded to the model's size.
        tokens = fields["tokenizer.ggml.tokens"]
        assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
        n_tok = small_tokenizer.vocab_size
        assert len(tokens) == VOCAB and tokens[:n_tok] == [small_tokenizer.id_to_token(i) for i in range(n_tok)]
        merges = json.loads(small_tokenizer.backend.to_str())["model"]["merges"]
        assert fields["tokenizer.ggml.merges"] == [" ".join(m) if isinstance(m, list) else m for m in merges]
        types = fields["tokenizer.ggml.token_type"]
        eos = small_tokenizer.eos_token_id
        assert fields["tokenizer.ggml.eos_token_id"] == eos and types[eos] == gguf.TokenType.CONTROL
        assert types[100] == gguf.TokenType.NORMAL and types[VOCAB - 1] == gguf.TokenType.UNUSED
        assert fields["tokenizer.chat_template"] == small_tokenizer.chat_template
        # Tensors: our weights under llama.cpp's names (q and k rows in its RoPE order).
        ours = expected_tensors(style, cfg, state)
        assert set(tensors) == set(ours)
        for name, want in ours.items():
            got = as_array(tensors[name])
            assert got.shape == want.shape, name
            scale = np.abs(want).max()
            assert np.abs(got - want).max() <= tol * scale, (quantize, name)
            quantised = tensors[name].tensor_type != gguf.GGMLQuantizationType.F32
            assert quantised == (quantize != "f32" and want.ndim == 2 and name != "position_embd.weight"), name


def expected_tensors(style: str, cfg, state) -> dict[str, np.ndarray]:
    n = lambda t: t.detach().float().numpy()  # noqa: E731
    out = {"token_embd.weight": n(state["embed.weight"]), "output_norm.weight": n(state["final_norm.weight"])}
    if not cfg.tie_embeddings:
        out["output.weight"] = n(state["lm_head.weight"])
    q_dim = kv_dim = cfg.n_head * cfg.head_dim
    if style == "llama":
        kv_dim = cfg.n_kv_head * cfg.head_dim
    for i in range(cfg.n_layer):
        b, o = f"blocks.{i}.", f"blk.{i}."
        out[o + "attn_norm.weight"] = n(state[b + "attn_norm.weight"])
        out[o + "ffn_norm.weight"] = n(state[b + "mlp_norm.weight"])
        out[o + "attn_output.weight"] = n(state[b + "attn.out.weight"])
        out[o + "ffn_up.weight"] = n(state[b + "mlp.up.weight"])
        out[o + "ffn_down.weight"] = n(state[b + "mlp.down.weight"])
        if style == "llama":
            q, k, v = state[b + "attn.qkv.weight"].split([q_dim, kv_dim, kv_dim])
            out[o + "attn_q.weight"] = n(rotary_rows(q, cfg.n_head))
            out[o + "attn_k.weight"] = n(rotary_rows(k, cfg.n_kv_head))
            out[o + "attn_v.weight"] = n(v)
            out[o + "ffn_gate.weight"] = n(state[b + "mlp.gate.weight"])
        else:
            out[o + "attn_qkv.weight"] = n(state[b + "attn.qkv.weight"])
            for ours, theirs in (("attn_norm", "attn_norm"), ("attn.qkv", "attn_qkv"), ("attn.out", "attn_output"),
                                 ("mlp_norm", "ffn_norm"), ("mlp.up", "ffn_up"), ("mlp.down", "ffn_down")):
                out[f"{o}{theirs}.bias"] = n(state[f"{b}{ours}.bias"])
    if style == "gpt2":
        out["position_embd.weight"] = n(state["pos_embed.weight"])
        out["output_norm.bias"] = n(state["final_norm.bias"])
    return out


def test_rotary_rows_turn_rotate_half_into_adjacent_pairs():
    """The permutation is RoPE's change of layout: rotating halves of x equals rotating adjacent
    pairs of x permuted the same way (what llama.cpp's "normal" RoPE computes)."""
    from llmlab.model.layers import RotaryEmbedding, apply_rotary

    d = 8
    x = torch.randn(1, 1, 5, d)
    cos, sin = RotaryEmbedding(d, 16)(torch.arange(5)[None], torch.float32)
    half = apply_rotary(x, cos, sin)
    perm = lambda t: rotary_rows(t.reshape(5, d).t(), 1).t()  # noqa: E731  (rows of a weight = features here)
    xp = perm(x)
    theta = cos[0, 0, :, : d // 2].repeat_interleave(2, -1), sin[0, 0, :, : d // 2].repeat_interleave(2, -1)
    pairs = xp.reshape(5, d // 2, 2)
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], -1).reshape(5, d)
    assert torch.allclose(xp * theta[0] + rotated * theta[1], perm(half), atol=1e-6)


def test_what_gguf_cannot_express_is_refused_in_one_line(tmp_path, small_tokenizer, capsys):
    cases = {
        "qwen2": (dict(family="qwen2", attention_bias=True), "family 'qwen2' is not supported"),
        "window": (dict(family="mistral", sliding_window=8), "sliding_window is 8"),
        "biased": (dict(attention_bias=True), "biases"),
        "relu": (dict(family="gpt2", position="learned", norm="layernorm", mlp="relu", n_kv_head=4), "mlp is 'relu'"),
    }
    for name, (changes, match) in cases.items():
        llmlab.save_checkpoint(tmp_path / name, TransformerLM(preset("tiny", vocab_size=VOCAB, n_layer=1, **changes)),
                               small_tokenizer)
        with pytest.raises(CheckpointError, match=match) as info:
            export_gguf(tmp_path / name, tmp_path / f"{name}.gguf")
        assert "\n" not in str(info.value) and not (tmp_path / f"{name}.gguf").exists()
    llmlab.save_checkpoint(tmp_path / "bare", TransformerLM(preset("tiny", vocab_size=VOCAB, n_layer=1)))
    with pytest.raises(CheckpointError, match="no tokenizer"):
        export_gguf(tmp_path / "bare", tmp_path / "bare.gguf")
    # A file the user has is never replaced, by the library or the command.
    llmlab.save_checkpoint(tmp_path / "ok", TransformerLM(preset("tiny", vocab_size=VOCAB, n_layer=1)), small_tokenizer)
    (tmp_path / "mine.gguf").write_text("precious")
    with pytest.raises(OutputError, match="already exists"):
        export_gguf(tmp_path / "ok", tmp_path / "mine.gguf")
    assert main(["export-gguf", str(tmp_path / "ok"), "--out", str(tmp_path / "mine.gguf")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "already exists" in err[0]
    assert (tmp_path / "mine.gguf").read_text() == "precious"
    out = tmp_path / "new.gguf"
    assert main(["export-gguf", str(tmp_path / "ok"), "--out", str(out), "--quantize", "q8_0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quantize"] == "q8_0" and out.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind


# ---------------------------------------------------------------------------- llama.cpp itself
def _llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        pytest.skip('llama-cpp-python is not installed (CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON '
                    '-DGGML_F16C=ON" pip install llama-cpp-python; see .ci/run)')
    return llama_cpp


def llama_cpp_greedy(llama_cpp, path, prompt: list[int], n: int) -> tuple[list[int], np.ndarray]:
    """Greedy tokens from llama.cpp, fed token ids (so only the weights are compared), and its logits
    for each of them."""
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_batch=128, n_threads=1, logits_all=True, verbose=False,
                          seed=0)
    llm.eval(prompt)
    out, logits = [], []
    for _ in range(n):
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        logits.append(row)
        out.append(int(row.argmax()))
        llm.eval([out[-1]])
    llm.close()
    return out, np.stack(logits)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_tokenizer):
    """Tiny models trained for a few seconds (a random one repeats one token; a trained one has
    sharp but varied predictions), saved as checkpoints: Llama-style with GQA, and GPT-2-style."""
    from conftest import SAMPLE_TEXT

    _llama_cpp()  # skip before training when llama.cpp is not there to compare with
    root = tmp_path_factory.mktemp("gguf-trained")
    torch.set_num_threads(1)
    gpt2 = dict(position="learned", norm="layernorm", mlp="gelu", attention_bias=True, mlp_bias=True, family="gpt2")
    for style, extra in (("llama", dict(n_head=4, n_kv_head=2, tie_embeddings=False)), ("gpt2", gpt2)):
        model = train_small_lm(small_tokenizer, SAMPLE_TEXT[:6], context=64, seq_len=32, steps=120, **extra)
        llmlab.save_checkpoint(root / style, model, small_tokenizer)
    return root


@pytest.mark.parametrize("style", ["llama", "gpt2"])
def test_llama_cpp_generates_llmlab_greedy_tokens(style, trained, small_tokenizer, tmp_path):
    llama_cpp = _llama_cpp()
    from llmlab.infer import Engine

    model, tok = llmlab.load(trained / style)
    prompt = tok.encode("Tom lives in Pinebrook. He")
    n = 24
    ours = Engine(model, tok).generate(prompt, temperature=0, max_new_tokens=n, ignore_eos=True)
    with torch.no_grad():
        our_logits = model(torch.tensor([prompt + ours.token_ids[:-1]])).logits[0, len(prompt) - 1:].numpy()
    export_gguf(trained / style, tmp_path / "f32.gguf", "f32")
    tokens, logits = llama_cpp_greedy(llama_cpp, tmp_path / "f32.gguf", prompt, n)
    assert tokens == ours.token_ids
    # llama.cpp's own tokenizer, from the file's vocabulary and merges, encodes text as llmlab does.
    from conftest import SAMPLE_TEXT

    vocab = llama_cpp.Llama(model_path=str(tmp_path / "f32.gguf"), vocab_only=True, verbose=False)
    for text in SAMPLE_TEXT[:6]:
        assert vocab.tokenize(text.encode(), add_bos=False) == tok.encode(text), text
    vocab.close()
    assert np.abs(logits - our_logits).max() < 1e-2 * np.abs(our_logits).max()
    # q8_0: close, not equal (8-bit weights): most tokens agree and the logits stay near.
    export_gguf(trained / style, tmp_path / "q8.gguf", "q8_0")
    tokens8, logits8 = llama_cpp_greedy(llama_cpp, tmp_path / "q8.gguf", prompt, n)
    agree = next((i for i, (a, b) in enumerate(zip(tokens8, ours.token_ids)) if a != b), n)
    assert agree >= n // 2, (tokens8, ours.token_ids)
    assert np.abs(logits8[:agree] - our_logits[:agree]).max() < 0.1 * np.abs(our_logits).max()
