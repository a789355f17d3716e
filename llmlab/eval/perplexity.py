"""Perplexity with the strided sliding window, plus bits per byte and word perplexity.

The lesson's `calculate_perplexity` ran the whole text through the model at once, which fails for
texts longer than the context. Here the text is scored in windows of at most `window` tokens (the
context length) that move `stride` tokens at a time; each window scores only the tokens no
earlier window scored, and the tokens before them in the window are context only (Hugging Face's
"Perplexity of fixed-length models" guide). A smaller stride gives every token more context (a
lower, better estimate) at the cost of more forward passes.

    window 1: [t0 t1 ... t_{W-1}]                 scores t1 .. t_{W-1}
    window 2:      [t_S ... t_{S+W-1}]            scores t_W .. t_{S+W-1} (t_S .. t_{W-1} is context)

Equality with `transformers`: for stride < window this is exactly the guide's loop (tested to
1e-4 relative on an exported checkpoint), counting the scored tokens exactly (the guide weights
each window by its number of labels minus one, which is exact only for the first window). The
guide's loop never scores a window's first token, so with stride = window it silently skips one
token per window; here the step is capped at window - 1 so every token is scored exactly once.

Start token: like lm-evaluation-harness's rolling log-likelihood, each document is preceded by
the tokenizer's start token (bos, else the end-of-text token that separates documents in
training), so its first token is scored too and bits per byte covers the whole text. With
`add_start_token=False` (the guide's setup) the first token is context only.

Per-document metrics (lm-evaluation-harness, `lm_eval/api/metrics.py`, wikitext task):
- perplexity       = exp(-sum log p / scored tokens)          (token-level; depends on the tokenizer)
- word_perplexity  = exp(-sum log p / words), words = len(re.split(r"\\s+", doc)) per document
- byte_perplexity  = exp(-sum log p / bytes), bytes = len(doc.encode("utf-8"))
- bits_per_byte    = -sum log p / (bytes * ln 2)               (tokenizer-independent)
Sums run over all documents; each document is scored on its own (no context from the previous one).

Scoring goes through `llmlab.infer.sequence_logprobs` (the engine's scorer); nothing here samples.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from llmlab.errors import ConfigError, DataError

_WORD_SPLIT = re.compile(r"\s+")


@dataclass
class PerplexityResult:
    """What `calculate_perplexity` measured. `float(result)` is the perplexity (the lesson's return)."""

    perplexity: float
    tokens: int  # scored tokens
    nll: float  # mean negative log-likelihood, nats per scored token
    total_nll: float  # summed over every scored token
    bits_per_byte: float
    byte_perplexity: float
    word_perplexity: float
    bytes: int
    words: int
    documents: int
    windows: int  # forward-pass rows
    window: int
    stride: int  # the step actually used (at most window - 1)
    start_token: bool  # whether each document was preceded by a start token
    skipped_documents: int = 0  # documents with nothing to score (fewer than 2 tokens without a start token)

    def __float__(self) -> float:
        return self.perplexity

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_words(doc: str) -> int:
    """lm-eval's word count: `len(re.split(r"\\s+", doc))` (leading/trailing whitespace counts an empty word)."""
    return len(_WORD_SPLIT.split(doc))


def count_bytes(doc: str) -> int:
    return len(doc.encode("utf-8"))


def start_token_id(tokenizer: Any) -> int | None:
    """The token a document is conditioned on: bos, else the end-of-text token, else None."""
    for name in ("bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return None


def encode_document(tokenizer: Any, doc: str, add_start_token: bool = True) -> list[int]:
    """Token ids of `doc`, preceded by the start token when asked (and the tokenizer did not add one)."""
    ids = list(tokenizer.encode(doc))
    if add_start_token:
        start = start_token_id(tokenizer)
        if start is None:
            raise ConfigError("the tokenizer has no bos or end-of-text token; use add_start_token=False")
        bos = getattr(tokenizer, "bos_token_id", None)
        if not (ids and bos is not None and ids[0] == bos):
            ids = [start] + ids
    return ids


def sliding_windows(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, n_scored) per window over a sequence of n_tokens; the scored tokens are the
    window's last n_scored. Every token but the first is scored exactly once."""
    if window < 2:
        raise ConfigError(f"the window must be at least 2 tokens, got {window}")
    step = min(stride, window - 1)  # keep one token of context at each window's start
    out = []
    begin, prev_end = 0, 0
    while True:
        end = min(begin + window, n_tokens)
        out.append((begin, end, min(end - prev_end, end - begin - 1)))
        prev_end = end
        if end == n_tokens:
            return out
        begin += step


def _check_stride(stride: int | None, window: int) -> int:
    if stride is None:
        return window
    if isinstance(stride, bool) or not isinstance(stride, int):
        raise ConfigError(f"stride must be a whole number of tokens, got {stride!r}")
    if not 1 <= stride <= window:
        raise ConfigError(f"stride must be between 1 and the window ({window} tokens), got {stride}")
    return stride


def calculate_perplexity(
    model: Any,
    tokenizer: Any,
    text: str | Sequence[str],
    stride: int | None = None,
    *,
    window: int | None = None,
    add_start_token: bool = True,
    batch_tokens: int = 8192,
    progress: Callable[[int, int], None] | None = None,
) -> PerplexityResult:
    """Perplexity of `text` (one document) or of a list of documents under `model`.

    stride: tokens each window moves (default: the window, i.e. windows that share one token);
        smaller strides give each token more context. window: tokens per forward pass (default
        and maximum: the model's context length). batch_tokens: rows are batched up to about this
        many tokens per forward pass. progress(done_rows, total_rows) is called after each batch.
    Returns a PerplexityResult; `float(result)` is the perplexity, as the lesson returned.
    """
    import torch

    from llmlab.infer import sequence_logprobs

    docs = [text] if isinstance(text, str) else list(text)
    if not docs:
        raise DataError("no text to score")
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise DataError(f"document {i + 1} is {type(d).__name__}, not text")
    if all(d == "" for d in docs):
        raise DataError("the text is empty")
    context = int(model.config.context_length)
    window = context if window is None else int(window)
    if not 2 <= window <= context:
        raise ConfigError(f"window must be between 2 and the model's context length ({context}), got {window}")
    stride = _check_stride(stride, window)

    rows: list[tuple[list[int], int]] = []  # (window ids, number of scored tokens at its end)
    n_bytes = n_words = skipped = 0
    for doc in docs:
        ids = encode_document(tokenizer, doc, add_start_token) if doc else []
        if len(ids) < 2:
            skipped += 1
            continue
        n_bytes += count_bytes(doc)
        n_words += count_words(doc)
        rows += [(ids[b:e], k) for b, e, k in sliding_windows(len(ids), window, stride)]
    if not rows:
        what = "the text has" if len(docs) == 1 else "every document has"
        raise DataError(f"{what} fewer than 2 tokens; perplexity needs one token of context and one to score "
                        "(keep add_start_token=True to score single-token texts)")

    device = next(model.parameters()).device
    total = 0.0
    scored = 0
    # Similar lengths share a batch (little padding); padding goes on the right, after the targets.
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            start = 0
            while start < len(order):
                T = len(rows[order[start]][0])
                chunk = order[start:start + max(1, batch_tokens // T)]
                ids = torch.zeros(len(chunk), T, dtype=torch.long)
                attn = torch.zeros(len(chunk), T, dtype=torch.long)
                target = torch.zeros(len(chunk), T, dtype=torch.long)
                for r, i in enumerate(chunk):
                    seq, k = rows[i]
                    ids[r, :len(seq)] = torch.tensor(seq)
                    attn[r, :len(seq)] = 1
                    target[r, len(seq) - k:len(seq)] = 1
                mask = None if bool(attn.all()) else attn.to(device)
                lp = sequence_logprobs(model, ids.to(device), mask, completion_mask=target.to(device))
                total += float(lp.double().sum())
                scored += int(target.sum())
                start += len(chunk)
                if progress is not None:
                    progress(start, len(order))
    finally:
        model.train(was_training)

    nll_sum = -total
    nll = nll_sum / scored
    return PerplexityResult(
        perplexity=_exp(nll), tokens=scored, nll=nll, total_nll=nll_sum,
        bits_per_byte=nll_sum / (n_bytes * math.log(2)) if n_bytes else float("nan"),
        byte_perplexity=_exp(nll_sum / n_bytes) if n_bytes else float("nan"),
        word_perplexity=_exp(nll_sum / n_words) if n_words else float("nan"),
        bytes=n_bytes, words=n_words, documents=len(docs) - skipped, windows=len(rows), window=window,
        stride=min(stride, window - 1), start_token=add_start_token, skipped_documents=skipped,
    )


def _exp(x: float) -> float:
    return math.exp(x) if x < 700 else float("inf")


def read_documents(inputs: str | Path | Sequence[str | Path], *, field: str = "text",
                   max_documents: int | None = None) -> list[str]:
    """Documents from files or datasets: a .txt file is one document, .jsonl one per line (its
    `field`), also .parquet, directories, globs and saved Hugging Face datasets
    (`llmlab.data.sources`)."""
    from llmlab.data.sources import iter_documents, resolve_sources

    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    for item in items:
        p = Path(str(item))
        if not str(item).startswith("hf:") and not any(c in str(item) for c in "*?[") and not p.exists():
            raise DataError(f"file not found: {p}")
    docs: list[str] = []
    for doc in iter_documents(resolve_sources([str(i) for i in items]), field=field):
        docs.append(doc)
        if max_documents is not None and len(docs) >= max_documents:
            break
    if not docs:
        raise DataError(f"no text in {', '.join(str(i) for i in items)} (empty, or only whitespace)")
    return docs


def perplexity_of_files(model: Any, tokenizer: Any, inputs: str | Path | Iterable[str | Path],
                        stride: int | None = None, *, field: str = "text", max_documents: int | None = None, **kwargs: Any) -> PerplexityResult:
    """`calculate_perplexity` over the documents of files or a dataset (see `read_documents`)."""
    return calculate_perplexity(model, tokenizer, read_documents(inputs, field=field, max_documents=max_documents),
                                stride, **kwargs)


def trained_seq_len(model_dir: str | Path) -> int | None:
    """The sequence length a checkpoint was trained on (its train_config.json), if recorded.

    A model trained on shorter windows than its context length has never seen the later
    positions; perplexity windows longer than its training length measure extrapolation.
    """
    import json

    cfg = Path(model_dir) / "train_config.json"
    try:
        value = json.loads(cfg.read_text(encoding="utf-8")).get("seq_len") if cfg.is_file() else None
    except (OSError, ValueError):
        return None
    return int(value) if isinstance(value, int) and value > 1 else None


def trained_window(model: Any, model_dir: str | Path) -> int | None:
    """The default window for a checkpoint: its training length capped at its context length, or
    None (the context length) when unrecorded; positions beyond the training length were never trained."""
    trained = trained_seq_len(model_dir)
    return min(trained, model.config.context_length) if trained else None
