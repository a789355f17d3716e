"""Byte-level BPE tokenizer, built on Hugging Face `tokenizers`.

`Tokenizer` trains a GPT-2-style byte-level BPE (every byte is in the vocabulary, so any string,
in any script, encodes without unknown tokens and decodes back exactly), or loads an existing
`tokenizer.json` / GPT-2 `vocab.json` + `merges.txt` and then encodes exactly as that tokenizer
does. It saves the standard `tokenizer.json` + `tokenizer_config.json` pair, which
`transformers.PreTrainedTokenizerFast` loads unchanged.

The call API is the one the lesson uses: `tok(texts, padding=True, truncation=True,
max_length=N, return_tensors="pt")` gives `input_ids` and `attention_mask`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from llmlab.errors import ConfigError, DataError, json_error

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
DEFAULT_SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN, IM_START, IM_END)

# ChatML, the chat format tinyworld's SFT data and the chatbot use. An assistant turn ends with
# <|im_end|>, which is therefore also a stop token for generation.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_SPECIAL_KEYS = ("bos_token", "eos_token", "pad_token", "unk_token")


class BatchEncoding(dict):
    """A dict of encodings that also allows attribute access (`enc.input_ids`), as transformers does."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to(self, device: Any) -> "BatchEncoding":
        return BatchEncoding({k: (v.to(device) if hasattr(v, "to") else v) for k, v in self.items()})


class Tokenizer:
    """A tokenizer: a `tokenizers.Tokenizer` backend plus special tokens, padding and chat template."""

    def __init__(
        self,
        backend: "tokenizers.Tokenizer",  # noqa: F821
        *,
        eos_token: str | None = EOS_TOKEN,
        pad_token: str | None = None,
        bos_token: str | None = None,
        unk_token: str | None = None,
        chat_template: str | None = CHATML_TEMPLATE,
        padding_side: str = "right",
        model_max_length: int | None = None,
        extra_config: dict[str, Any] | None = None,
    ):
        self.backend = backend
        self.eos_token, self.pad_token, self.bos_token, self.unk_token = eos_token, pad_token, bos_token, unk_token
        for name in (eos_token, pad_token, bos_token, unk_token):
            if name is not None and backend.token_to_id(name) is None:
                raise ConfigError(f"special token {name!r} is not in the tokenizer's vocabulary")
        self.chat_template = chat_template
        self.padding_side = padding_side
        self.model_max_length = model_max_length
        self.extra_config = dict(extra_config or {})

    # ------------------------------------------------------------------ training
    @classmethod
    def train(
        cls,
        texts: Iterable[str] | None = None,
        *,
        files: Sequence[str | Path] | None = None,
        vocab_size: int = 4096,
        min_frequency: int = 2,
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        show_progress: bool = True,
        length: int | None = None,
    ) -> "Tokenizer":
        """Train a byte-level BPE on an iterator of texts or on text files.

        vocab_size counts the 256 byte tokens and the special tokens too.
        """
        from tokenizers import Tokenizer as Backend
        from tokenizers import decoders, models, pre_tokenizers, processors, trainers

        if (texts is None) == (files is None):
            raise ValueError("pass exactly one of `texts` or `files`")
        minimum = 256 + len(special_tokens) + 1
        if vocab_size < minimum:
            raise ConfigError(f"vocab_size must be at least {minimum} (256 bytes + special tokens + 1 merge)")
        backend = Backend(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(special_tokens),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=show_progress,
        )
        if files is not None:
            paths = [str(Path(f)) for f in files]
            for p in paths:
                if not Path(p).is_file():
                    raise DataError(f"tokenizer training file not found: {p}")
            if not any(Path(p).stat().st_size for p in paths):  # as for an empty iterator: no merges to learn
                raise DataError("cannot train a tokenizer on an empty corpus")
            backend.train(paths, trainer)
        else:
            seen = _CountingIterator(texts)
            backend.train_from_iterator(seen, trainer, length=length)
            if seen.count == 0:
                raise DataError("cannot train a tokenizer on an empty corpus")
        specials = set(special_tokens)
        return cls(
            backend,
            eos_token=EOS_TOKEN if EOS_TOKEN in specials else None,
            pad_token=PAD_TOKEN if PAD_TOKEN in specials else None,
            bos_token=None,
            chat_template=CHATML_TEMPLATE if {IM_START, IM_END} <= specials else None,
        )

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_pretrained(cls, path: str | Path) -> "Tokenizer":
        """Load from a directory holding `tokenizer.json` (and optionally `tokenizer_config.json`),
        a GPT-2 style `vocab.json` + `merges.txt`, or a `tokenizer.json` file path."""
        from tokenizers import Tokenizer as Backend

        path = Path(path)
        directory = path if path.is_dir() else path.parent
        if path.is_file():
            tokenizer_file = path
        elif (path / "tokenizer.json").is_file():
            tokenizer_file = path / "tokenizer.json"
        else:
            tokenizer_file = None
        if tokenizer_file is not None:
            try:
                backend = Backend.from_file(str(tokenizer_file))
            except Exception as exc:
                raise DataError(f"cannot read {tokenizer_file}: {str(exc).splitlines()[0]}") from None
        elif (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
            backend = _gpt2_backend(path / "vocab.json", path / "merges.txt")
        else:
            raise DataError(f"no tokenizer found in {path} (expected tokenizer.json, or vocab.json + merges.txt)")

        config = _read_tokenizer_config(directory)
        specials = {key: _token_content(config.get(key)) for key in _SPECIAL_KEYS}
        if tokenizer_file is None and not config:
            # A bare GPT-2 vocab.json/merges.txt: GPT-2 uses <|endoftext|> for bos, eos and unk.
            specials = {"bos_token": EOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": None, "unk_token": EOS_TOKEN}
        elif not config and backend.token_to_id(EOS_TOKEN) is not None:
            specials["eos_token"] = EOS_TOKEN
            if backend.token_to_id(PAD_TOKEN) is not None:
                specials["pad_token"] = PAD_TOKEN
        known = set(_SPECIAL_KEYS) | {"chat_template", "padding_side", "model_max_length", "tokenizer_class"}
        max_len = config.get("model_max_length")
        return cls(
            backend,
            **specials,
            chat_template=config.get("chat_template", CHATML_TEMPLATE if not config else None),
            padding_side=config.get("padding_side", "right"),
            model_max_length=int(max_len) if isinstance(max_len, (int, float)) and max_len < 1e12 else None,
            extra_config={k: v for k, v in config.items() if k not in known},
        )

    def save(self, directory: str | Path) -> None:
        """Write `tokenizer.json` and `tokenizer_config.json` (special tokens and chat template)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(directory / "tokenizer.json"))
        config: dict[str, Any] = dict(self.extra_config)
        config.update({"tokenizer_class": "PreTrainedTokenizerFast", "padding_side": self.padding_side})
        for key in _SPECIAL_KEYS:
            config[key] = getattr(self, key)
        # transformers reads added tokens from tokenizer.json; listing chat markers here makes
        # them "additional special tokens" there too, so skip_special_tokens drops them.
        extra = [t for t in self.special_tokens if t not in {config[k] for k in _SPECIAL_KEYS}]
        if extra:
            config["additional_special_tokens"] = extra
        if self.chat_template is not None:
            config["chat_template"] = self.chat_template
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")

    def fingerprint(self) -> str:
        """A short hash of the vocabulary and merges, to check data and models agree on a tokenizer."""
        return hashlib.sha256(self.backend.to_str().encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self.backend.id_to_token(token_id)

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str | None]:
        return [self.backend.id_to_token(int(i)) for i in ids]

    @property
    def eos_token_id(self) -> int | None:
        return self._id(self.eos_token)

    @property
    def pad_token_id(self) -> int | None:
        return self._id(self.pad_token)

    @property
    def bos_token_id(self) -> int | None:
        return self._id(self.bos_token)

    @property
    def special_tokens(self) -> list[str]:
        return [t.content for t in self.backend.get_added_tokens_decoder().values() if t.special]

    @property
    def all_special_ids(self) -> list[int]:
        return sorted(i for i, t in self.backend.get_added_tokens_decoder().items() if t.special)

    @property
    def stop_token_ids(self) -> list[int]:
        """Tokens that end a generation: end-of-text and, with a chat format, end-of-turn."""
        ids = [self.eos_token_id, self._id(IM_END)]
        return sorted({i for i in ids if i is not None})

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self.backend.token_to_id(token)

    # ------------------------------------------------------------------ encode / decode
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
        """Encode many texts in parallel (the Rust backend uses all cores)."""
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        return self.backend.decode([int(i) for i in _flat_ids(ids)], skip_special_tokens=skip_special_tokens)

    def batch_decode(self, sequences: Iterable[Iterable[int]], skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(s, skip_special_tokens=skip_special_tokens) for s in sequences]

    def __call__(
        self,
        text: str | Sequence[str],
        *,
        padding: bool | str = False,
        truncation: bool = False,
        max_length: int | None = None,
        return_tensors: str | None = None,
        add_special_tokens: bool = True,
        padding_side: str | None = None,
        return_attention_mask: bool = True,
    ) -> BatchEncoding:
        """Encode one text or a batch. padding: False, True/"longest", or "max_length".

        A single string gives flat lists (or [1, seq] tensors with return_tensors), as transformers does.
        """
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        side = padding_side or self.padding_side
        if side not in ("left", "right"):
            raise ConfigError(f"padding_side must be 'left' or 'right', got {side!r}")
        ids = self.encode_batch(texts, add_special_tokens=add_special_tokens)
        limit = max_length if max_length is not None else self.model_max_length
        if truncation:
            if limit is None:
                raise ConfigError("truncation=True needs max_length (or the tokenizer's model_max_length)")
            ids = [seq[:limit] for seq in ids]
        masks = [[1] * len(seq) for seq in ids]

        if padding in (True, "longest", "max_length"):
            width = max((len(s) for s in ids), default=0)
            if padding == "max_length":
                if max_length is None:
                    raise ConfigError('padding="max_length" needs max_length')
                width = max_length
            pad_id = self.pad_token_id if self.pad_token_id is not None else self.eos_token_id
            if pad_id is None:
                raise ConfigError("padding needs a pad or end-of-text token, and this tokenizer has neither")
            for i, seq in enumerate(ids):
                gap = width - len(seq)
                if side == "left":
                    ids[i], masks[i] = [pad_id] * gap + seq, [0] * gap + masks[i]
                else:
                    ids[i], masks[i] = seq + [pad_id] * gap, masks[i] + [0] * gap
        elif padding not in (False, None, "do_not_pad"):
            raise ConfigError(f"padding must be True, False, 'longest' or 'max_length', got {padding!r}")

        out = BatchEncoding(input_ids=ids)
        if return_attention_mask:
            out["attention_mask"] = masks
        if return_tensors is not None:
            out = BatchEncoding({k: _to_tensor(v, return_tensors) for k, v in out.items()})
        elif single:
            out = BatchEncoding({k: v[0] for k, v in out.items()})
        return out

    # ------------------------------------------------------------------ chat
    def apply_chat_template(
        self,
        messages: Sequence[dict[str, str]],
        *,
        add_generation_prompt: bool = False,
        tokenize: bool = False,
        chat_template: str | None = None,
    ) -> str | list[int]:
        """Render a conversation with the (Jinja) chat template, as transformers does."""
        template = chat_template or self.chat_template
        if template is None:
            raise ConfigError("this tokenizer has no chat template; pass chat_template=...")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise DataError(f"message {i} must be a mapping with 'role' and 'content'")
        text = _render_template(
            template, messages=list(messages), add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token or "", eos_token=self.eos_token or "",
        )
        return self.encode(text, add_special_tokens=False) if tokenize else text

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, eos={self.eos_token!r}, pad={self.pad_token!r})"


# ---------------------------------------------------------------------------- helpers
class _CountingIterator:
    def __init__(self, items: Iterable[str]):
        self._it = iter(items)
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        for item in self._it:
            self.count += 1
            yield item


def _gpt2_backend(vocab_file: Path, merges_file: Path):
    from tokenizers import Tokenizer as Backend
    from tokenizers import decoders, models, pre_tokenizers, processors

    try:
        model = models.BPE.from_file(str(vocab_file), str(merges_file))
    except Exception as exc:
        raise DataError(f"cannot read {vocab_file} / {merges_file}: {str(exc).splitlines()[0]}") from None
    backend = Backend(model)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    if backend.token_to_id(EOS_TOKEN) is not None:
        from tokenizers import AddedToken

        backend.add_special_tokens([AddedToken(EOS_TOKEN, special=True, normalized=False)])
    return backend


def _read_tokenizer_config(directory: Path) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the latter wins
        file = directory / name
        if file.is_file():
            try:
                config.update(json.loads(file.read_text()))
            except json.JSONDecodeError as exc:
                raise DataError(json_error(file, exc)) from None
    return config


def _token_content(value: Any) -> str | None:
    if isinstance(value, dict):  # transformers may store AddedToken dicts
        return value.get("content")
    return value


def _flat_ids(ids: Iterable[int]) -> Iterable[int]:
    ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    if ids and isinstance(ids[0], list):
        if len(ids) != 1:
            raise ValueError("decode takes one sequence; use batch_decode for several")
        ids = ids[0]
    return ids


def _to_tensor(rows: list[list[int]], kind: str):
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        raise ConfigError("sequences have different lengths; pass padding=True to return tensors")
    if kind == "pt":
        import torch

        return torch.tensor(rows, dtype=torch.long)
    if kind == "np":
        import numpy as np

        return np.array(rows, dtype=np.int64)
    raise ConfigError(f"return_tensors must be 'pt' or 'np', got {kind!r}")


def _render_template(template: str, **context: Any) -> str:
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template).render(**context)
    except TemplateError as exc:
        raise DataError(f"chat template failed: {exc}") from None
