"""How many UTF-8 bytes each token stands for, so losses can be reported in bits per byte.

Bits per byte (total nats / (ln 2 * bytes of text)) compares models with different tokenizers,
which per-token loss and perplexity cannot.
"""

from __future__ import annotations

import numpy as np


def byte_level_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: the printable character standing for each byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def token_byte_lengths(tokenizer) -> np.ndarray:
    """int64 [vocab_size]: bytes of text per token id (special tokens count 0)."""
    n = tokenizer.vocab_size
    lengths = np.zeros(n, dtype=np.int64)
    special = set(tokenizer.all_special_ids)
    decoder = byte_level_decoder()
    for i in range(n):
        if i in special:
            continue
        token = tokenizer.id_to_token(i)
        if token is None:
            continue
        if all(ch in decoder for ch in token):
            lengths[i] = len(token)  # byte-level BPE: one character per byte
        else:  # other vocabularies (e.g. SentencePiece): measure the decoded text
            lengths[i] = len(tokenizer.decode([i]).encode("utf-8"))
    return lengths
