"""Perplexity: equal to what `transformers` computes with its documented strided loop on the
exported checkpoint; lm-eval's bits per byte and word perplexity; one-line errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

import llmlab
from llmlab.errors import ConfigError, DataError
from llmlab.eval.perplexity import (
    calculate_perplexity,
    count_words,
    encode_document,
    perplexity_of_files,
    sliding_windows,
)

transformers = pytest.importorskip("transformers")

TEXT = ("Once upon a time, Mia had a small dog named Rex. Rex liked to run in the park. "
        "Tom lives in Pinebrook. He works as a baker and his favourite food is soup. "
        "Sam has 3 apples. He buys 4 more. 3 + 4 = 7. The shop was clean and the bread was fresh. "
        "Zoë ate crème brûlée in Köln; 東京 is far away 🙂.")
WINDOW = 16


@pytest.fixture(scope="module")
def exported(small_tokenizer, tmp_path_factory):
    """An llmlab checkpoint with non-trivial weights (O(1) logits, so context matters), its
    Hugging Face export, and both models loaded."""
    from llmlab.config import preset
    from llmlab.interop import export_hf
    from llmlab.model import TransformerLM

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ppl")
    cfg = preset("tiny", vocab_size=small_tokenizer.vocab_size, n_layer=2, context_length=WINDOW)
    torch.manual_seed(0)
    model = TransformerLM(cfg)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("norm.weight"):
                p.copy_(0.12 * torch.randn(p.shape, generator=g))
    llmlab.save_checkpoint(root / "ckpt", model, small_tokenizer)
    export_hf(root / "ckpt", root / "hf")
    ours, tok = llmlab.load(root / "ckpt")
    hf = transformers.AutoModelForCausalLM.from_pretrained(root / "hf").eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(root / "hf")
    return {"root": root, "model": ours, "tok": tok, "hf": hf, "hf_tok": hf_tok}


def hf_guide_perplexity(model, input_ids: torch.Tensor, max_length: int, stride: int) -> float:
    """The loop of transformers' "Perplexity of fixed-length models" guide, with the number of
    scored labels counted exactly: (labels[:, 1:] != -100), the tokens the loss averages over."""
    seq_len = input_ids.size(1)
    nll_sum, n_tokens, prev_end_loc = 0.0, 0, 0
    for begin_loc in range(0, seq_len, stride):
        end_loc = min(begin_loc + max_length, seq_len)
        trg_len = end_loc - prev_end_loc
        ids = input_ids[:, begin_loc:end_loc]
        target_ids = ids.clone()
        target_ids[:, :-trg_len] = -100
        with torch.no_grad():
            loss = model(ids, labels=target_ids).loss
        n = int((target_ids[:, 1:] != -100).sum())
        nll_sum += float(loss) * n
        n_tokens += n
        prev_end_loc = end_loc
        if end_loc == seq_len:
            break
    return math.exp(nll_sum / n_tokens)


@pytest.mark.parametrize("stride", [1, 5, 8, WINDOW - 1])
@pytest.mark.parametrize("start", [True, False])
def test_equals_transformers_strided_loop(exported, stride, start):
    tok, hf_tok = exported["tok"], exported["hf_tok"]
    ids = hf_tok(TEXT, return_tensors="pt").input_ids
    assert ids[0].tolist() == tok.encode(TEXT) and ids.size(1) > 3 * WINDOW  # several windows
    if start:
        ids = torch.cat([torch.tensor([[tok.eos_token_id]]), ids], dim=1)
    ref = hf_guide_perplexity(exported["hf"], ids, WINDOW, stride)
    res = calculate_perplexity(exported["model"], tok, TEXT, stride=stride, add_start_token=start)
    assert res.perplexity == pytest.approx(ref, rel=1e-4)
    assert res.tokens == ids.size(1) - 1  # every token but the first scored exactly once
    assert float(res) == res.perplexity


def test_stride_changes_the_number_and_window_equals_one_pass(exported):
    model, tok = exported["model"], exported["tok"]
    disjoint = calculate_perplexity(model, tok, TEXT)
    sliding = calculate_perplexity(model, tok, TEXT, stride=4)
    assert abs(sliding.perplexity / disjoint.perplexity - 1) > 1e-3  # context really matters here
    assert disjoint.stride == WINDOW - 1 and disjoint.tokens == sliding.tokens
    # stride = window behaves as window - 1 (the guide's loop would skip a token per window)
    assert calculate_perplexity(model, tok, TEXT, stride=WINDOW - 1).perplexity == disjoint.perplexity
    # A text that fits in one window: the plain full-sequence loss, as transformers computes it.
    short = "Mia had a small dog named Rex."
    ids = torch.tensor([encode_document(tok, short)])
    assert ids.size(1) < WINDOW
    with torch.no_grad():
        ref = math.exp(float(exported["hf"](ids, labels=ids).loss))
    assert calculate_perplexity(model, tok, short, stride=3).perplexity == pytest.approx(ref, rel=1e-4)


def test_lm_eval_definitions(exported):
    model, tok = exported["model"], exported["tok"]
    docs = ["Mia had a dog.", "  Tom is a baker in Pinebrook.\n", "東京 🙂"]
    res = calculate_perplexity(model, tok, docs)
    singles = [calculate_perplexity(model, tok, d) for d in docs]
    assert res.total_nll == pytest.approx(sum(s.total_nll for s in singles), rel=1e-6)
    assert res.tokens == sum(len(tok.encode(d)) for d in docs)  # each document scored from its start token
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    assert res.bytes == n_bytes and n_bytes > sum(len(d) for d in docs)  # bytes, not characters
    assert res.words == 4 + 8 + 2  # lm-eval's re.split(r"\s+"): the padded document counts 2 empty words
    assert count_words("  a b\n") == 4
    assert res.bits_per_byte == pytest.approx(res.total_nll / n_bytes / math.log(2))
    assert res.byte_perplexity == pytest.approx(2 ** res.bits_per_byte)
    assert res.word_perplexity == pytest.approx(math.exp(res.total_nll / res.words))
    assert res.perplexity == pytest.approx(math.exp(res.total_nll / res.tokens))


def test_sliding_windows_score_every_token_once():
    for n, w, s in [(1000, 16, 15), (1000, 16, 16), (100, 16, 5), (10, 16, 4), (17, 16, 1)]:
        covered = []
        for b, e, k in sliding_windows(n, w, s):
            assert e - b <= w and 1 <= k <= e - b - 1
            covered += list(range(e - k, e))
        assert covered == list(range(1, n))


def test_files_jsonl_txt_and_datasets(exported, tmp_path):
    model, tok = exported["model"], exported["tok"]
    docs = ["Mia had a dog.", "Tom is a baker."]
    jl = tmp_path / "val.jsonl"
    jl.write_text("".join(json.dumps({"text": d, "kind": "x"}) + "\n" for d in docs))
    assert perplexity_of_files(model, tok, jl).perplexity == pytest.approx(
        calculate_perplexity(model, tok, docs).perplexity, rel=1e-6)
    txt = tmp_path / "a.txt"
    txt.write_text(TEXT)
    assert perplexity_of_files(model, tok, txt, stride=8).perplexity == pytest.approx(
        calculate_perplexity(model, tok, TEXT, stride=8).perplexity, rel=1e-6)
    assert perplexity_of_files(model, tok, jl, max_documents=1).documents == 1


@pytest.mark.parametrize("kwargs,error,msg", [
    (dict(text=""), DataError, "empty"),
    (dict(text=[]), DataError, "no text"),
    (dict(text="a", add_start_token=False), DataError, "fewer than 2 tokens"),
    (dict(text=TEXT, stride=0), ConfigError, "stride must be between 1 and the window"),
    (dict(text=TEXT, stride=WINDOW + 1), ConfigError, "stride must be between 1 and the window"),
    (dict(text=TEXT, stride=2.5), ConfigError, "whole number"),
    (dict(text=TEXT, window=WINDOW * 2), ConfigError, "context length"),
])
def test_bad_inputs(exported, kwargs, error, msg):
    with pytest.raises(error, match=msg) as info:
        calculate_perplexity(exported["model"], exported["tok"], **kwargs)
    assert "\n" not in str(info.value)


def test_single_token_text_is_scored_from_the_start_token(exported):
    res = calculate_perplexity(exported["model"], exported["tok"], "a")
    assert res.tokens == 1 and res.perplexity > 1


def test_missing_and_empty_files(exported, tmp_path):
    with pytest.raises(DataError, match="file not found"):
        perplexity_of_files(exported["model"], exported["tok"], tmp_path / "nope.txt")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="no text in"):
        perplexity_of_files(exported["model"], exported["tok"], empty)
