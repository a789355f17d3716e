"""The byte-level BPE tokenizer: agreement with transformers, lossless Unicode round trips (including
byte tokens that are not valid UTF-8 alone), GPT-2 vocab.json + merges.txt, the lesson's call API
and padding sides."""

from __future__ import annotations

import random

import pytest
import torch

from llmlab.errors import ConfigError, DataError
from llmlab.tokenizer import EOS_TOKEN, PAD_TOKEN, Tokenizer

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

# Hand-picked hard cases: emoji (4-byte, ZWJ sequences, skin tones, flags), combining marks,
# CJK, right-to-left scripts, control characters, whitespace runs, and the special-token lookalike.
HARD_TEXTS = [
    "plain ASCII text, with punctuation!?",
    "👩🏽‍💻 🏳️‍🌈 🇯🇵 🙂🙂",
    "e\u0301 a\u0308 n\u0303 Z\u0351\u0352\u0353alg\u0354o",  # combining marks
    "東京は遠い。한국어 텍스트. ไทย",
    "مرحبا بالعالم — שלום עולם",
    "tabs\tand\nnew\r\nlines  and   spaces   ",
    "\x00\x01\x7f control \u200b zero-width \ufeff bom",
    "math 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ∑∫√ and a lone combining mark \u0301 at the start",
    "",
]


def random_unicode(rng: random.Random, n: int) -> str:
    """Random text drawn from the whole Unicode range (minus surrogates, which are not characters)."""
    chars = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.3:
            cp = rng.randint(0x20, 0x7E)
        elif kind < 0.5:
            cp = rng.randint(0x80, 0x7FF)
        elif kind < 0.7:
            cp = rng.choice([rng.randint(0x800, 0xD7FF), rng.randint(0xE000, 0xFFFF)])
        else:
            cp = rng.randint(0x10000, 0x10FFFF)
        chars.append(chr(cp))
    return "".join(chars)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, small_tokenizer):
    path = tmp_path_factory.mktemp("tok")
    small_tokenizer.save(path)
    return path


def test_trained_tokenizer_loads_in_transformers_and_encodes_identically(saved, small_tokenizer):
    hf = transformers.PreTrainedTokenizerFast.from_pretrained(saved)
    rng = random.Random(0)
    texts = HARD_TEXTS + [random_unicode(rng, rng.randint(1, 60)) for _ in range(200)]
    texts += ["Once upon a time, Mia had a dog." + EOS_TOKEN + "The end."]
    for text in texts:
        assert hf(text)["input_ids"] == small_tokenizer.encode(text), repr(text)
    assert hf.eos_token == EOS_TOKEN and hf.eos_token_id == small_tokenizer.eos_token_id
    assert hf.pad_token == PAD_TOKEN and hf.pad_token_id == small_tokenizer.pad_token_id
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    assert hf.apply_chat_template(messages, tokenize=False) == small_tokenizer.apply_chat_template(messages)


def test_round_trip_of_arbitrary_unicode(small_tokenizer):
    rng = random.Random(1)
    for text in HARD_TEXTS + [random_unicode(rng, rng.randint(1, 80)) for _ in range(300)]:
        assert small_tokenizer.decode(small_tokenizer.encode(text)) == text, repr(text)


def test_single_bytes_of_multibyte_characters_decode_together(small_tokenizer):
    # A character the training text never saw splits into its UTF-8 bytes, one token each.
    text = "𝔘"  # F0 9D 94 98
    ids = small_tokenizer.encode(text)
    assert len(ids) == len(text.encode("utf-8")) == 4
    for i in ids:
        # Alone, each is not valid UTF-8: the decoder can only show a replacement character ...
        assert small_tokenizer.decode([i]) == "\ufffd"
    # ... but nothing is lost: together they decode exactly, also inside other text.
    assert small_tokenizer.decode(ids) == text
    mixed = small_tokenizer.encode("a" + text + "b")
    assert small_tokenizer.decode(mixed) == "a𝔘b"
    # Splitting a character across two decode calls loses it; decoding the whole sequence does not.
    assert small_tokenizer.decode(ids[:2]) + small_tokenizer.decode(ids[2:]) != text


def test_gpt2_vocab_and_merges_encode_like_transformers(tmp_path, small_tokenizer):
    small_tokenizer.backend.model.save(str(tmp_path))  # writes vocab.json and merges.txt
    assert (tmp_path / "vocab.json").is_file() and (tmp_path / "merges.txt").is_file()
    ours = Tokenizer.from_pretrained(tmp_path)
    theirs = transformers.GPT2TokenizerFast.from_pretrained(tmp_path)  # reads vocab.json + merges.txt
    rng = random.Random(2)
    texts = HARD_TEXTS + [random_unicode(rng, rng.randint(1, 50)) for _ in range(100)]
    texts += ["Tom lives in Pinebrook." + EOS_TOKEN + " He bakes bread."]
    for text in texts:
        assert ours.encode(text) == theirs(text)["input_ids"], repr(text)
        assert ours.decode(ours.encode(text)) == text
    assert ours.eos_token == EOS_TOKEN and ours.eos_token_id == theirs.eos_token_id


def test_lesson_call_api_and_padding_sides(small_tokenizer, saved):
    texts = ["Once upon a time", "Hi", "Tom lives in Pinebrook and bakes bread every day"]
    hf = transformers.PreTrainedTokenizerFast.from_pretrained(saved)
    for side in ("right", "left"):
        enc = small_tokenizer(texts, padding=True, truncation=True, max_length=8, return_tensors="pt",
                              padding_side=side)
        assert isinstance(enc["input_ids"], torch.Tensor) and enc.input_ids.shape == enc.attention_mask.shape
        assert enc.input_ids.shape[1] == 8  # the long text was truncated to max_length
        ref = hf(texts, padding=True, truncation=True, max_length=8, return_tensors="pt", padding_side=side)
        assert torch.equal(enc.input_ids, ref["input_ids"]) and torch.equal(enc.attention_mask, ref["attention_mask"])
        short = enc.input_ids[1]
        pads = enc.attention_mask[1] == 0
        assert pads.sum() > 0 and (short[pads] == small_tokenizer.pad_token_id).all()
        # Left padding puts pads first, right padding last.
        assert bool(pads[0]) == (side == "left") and bool(pads[-1]) == (side == "right")
    decoded = small_tokenizer.decode(enc.input_ids[1], skip_special_tokens=True)
    assert decoded == "Hi"
    single = small_tokenizer("Hi")
    assert single["input_ids"] == small_tokenizer.encode("Hi")
    assert single["attention_mask"] == [1] * len(single["input_ids"])


def test_skip_special_tokens_and_ids(small_tokenizer):
    ids = small_tokenizer.encode("Hello" + EOS_TOKEN + PAD_TOKEN)
    assert ids[-2:] == [small_tokenizer.eos_token_id, small_tokenizer.pad_token_id]
    assert small_tokenizer.decode(ids, skip_special_tokens=True) == "Hello"
    assert small_tokenizer.decode(ids) == "Hello" + EOS_TOKEN + PAD_TOKEN
    assert small_tokenizer.eos_token_id != small_tokenizer.pad_token_id


def test_saved_tokenizer_reloads_identically(saved, small_tokenizer):
    again = Tokenizer.from_pretrained(saved)
    assert again.fingerprint() == small_tokenizer.fingerprint()
    assert again.chat_template == small_tokenizer.chat_template
    assert (again.eos_token, again.pad_token) == (EOS_TOKEN, PAD_TOKEN)


def test_training_from_files_equals_training_from_texts(tmp_path):
    lines = ["Once upon a time, Mia had a dog named Rex.", "Tom lives in Pinebrook and bakes bread."] * 20
    (tmp_path / "a.txt").write_text("\n".join(lines[:20]) + "\n")
    (tmp_path / "b.txt").write_text("\n".join(lines[20:]) + "\n")
    from_files = Tokenizer.train(files=[tmp_path / "a.txt", tmp_path / "b.txt"], vocab_size=300, show_progress=False)
    from_texts = Tokenizer.train(lines, vocab_size=300, show_progress=False)
    assert from_files.fingerprint() == from_texts.fingerprint()
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="empty corpus"):
        Tokenizer.train(files=[tmp_path / "empty.txt"], vocab_size=300, show_progress=False)
    with pytest.raises(DataError, match="not found"):
        Tokenizer.train(files=[tmp_path / "missing.txt"], vocab_size=300, show_progress=False)


def test_tokenizer_bad_input(tmp_path, small_tokenizer):
    with pytest.raises(DataError, match="no tokenizer found"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        Tokenizer.from_pretrained(tmp_path)
    with pytest.raises(DataError, match="empty corpus"):
        Tokenizer.train([], vocab_size=400, show_progress=False)
    with pytest.raises(ConfigError, match="vocab_size must be at least"):
        Tokenizer.train(["abc"], vocab_size=10, show_progress=False)
    with pytest.raises(ConfigError, match="padding_side"):
        small_tokenizer(["a"], padding=True, padding_side="middle")
