"""Turning generated tokens into text as they arrive: incremental decoding and stop strings.

Two things make this harder than `tokenizer.decode(new_ids)`:
- A byte-level BPE token can hold part of a multi-byte character (an emoji is often 2-4 tokens).
  Decoding such a prefix gives U+FFFD; we hold text back until the character is complete, so a
  stream never shows half a character.
- A stop string can span several tokens, and a streamed piece could end with its beginning
  ("Hum" of "Human:"). We hold back any suffix that might start a stop string until the next
  tokens settle it, and cut the text where a stop string begins, excluding it.

Decoding re-reads a short window of tokens (as vLLM does) rather than single tokens, so
tokenizers whose decoding depends on neighbours (SentencePiece's leading space) come out right.
"""

from __future__ import annotations

from typing import Sequence

REPLACEMENT = "\ufffd"
_PROMPT_CONTEXT = 4  # prompt tokens decoded with the first generated ones, for tokenizers that need a left neighbour


class IncrementalDetokenizer:
    def __init__(self, tokenizer, prompt_ids: Sequence[int] = (), skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = list(prompt_ids[-_PROMPT_CONTEXT:])
        self.prefix_offset = 0
        self.read_offset = len(self.ids)
        self._prefix_text = self._decode(self.ids)

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip_special_tokens) if ids else ""

    def add(self, token_id: int) -> str:
        """Append one token; return the newly completed text ("" while a character is incomplete)."""
        self.ids.append(token_id)
        text = self._decode(self.ids[self.prefix_offset:])
        if len(text) > len(self._prefix_text) and not text.endswith(REPLACEMENT):
            delta = text[len(self._prefix_text):]
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            self._prefix_text = self._decode(self.ids[self.prefix_offset:self.read_offset])
            return delta
        return ""

    def flush(self) -> str:
        """At the end: whatever is still held back (an incomplete character decodes as U+FFFD)."""
        text = self._decode(self.ids[self.prefix_offset:])
        delta = text[len(self._prefix_text):] if text.startswith(self._prefix_text) else ""
        self.prefix_offset = self.read_offset = len(self.ids)
        self._prefix_text = ""
        return delta


class TextAssembler:
    """Per-request text: decodes tokens, applies stop strings, and hands out safe-to-show pieces.

    `add(token)` returns (piece, stopped); the pieces, followed by `finish()`, concatenate to
    `text`, the final text (without any stop string)."""

    def __init__(self, tokenizer, prompt_ids: Sequence[int] = (), stop: Sequence[str] = (), skip_special_tokens: bool = True):
        self.detok = IncrementalDetokenizer(tokenizer, prompt_ids, skip_special_tokens)
        self.stop = list(stop)
        self.max_stop = max((len(s) for s in self.stop), default=0)
        self.text = ""
        self.emitted = 0
        self.stop_reason: str | None = None

    def add(self, token_id: int) -> tuple[str, bool]:
        return self._extend(self.detok.add(token_id))

    def finish(self) -> str:
        """The rest of the text once generation ends (no more holding back)."""
        if self.stop_reason is None:
            piece, _ = self._extend(self.detok.flush())
        else:
            piece = ""
        rest = piece + self.text[self.emitted:]
        self.emitted = len(self.text)
        return rest

    def _extend(self, new: str) -> tuple[str, bool]:
        if self.stop_reason is not None:
            return "", True
        if not new:
            return "", False
        start = max(0, len(self.text) - self.max_stop + 1)
        self.text += new
        if self.stop:
            hit = self._find_stop(start)
            if hit is not None:
                index, s = hit
                self.text = self.text[:index]
                self.stop_reason = s
                piece = self.text[self.emitted:]
                self.emitted = len(self.text)
                return piece, True
        safe = len(self.text) - self._partial_stop_suffix()
        piece = self.text[self.emitted:safe] if safe > self.emitted else ""
        self.emitted = max(self.emitted, safe)
        return piece, False

    def _find_stop(self, start: int) -> tuple[int, str] | None:
        """The earliest stop string occurrence that ends in the new text."""
        best = None
        for s in self.stop:
            i = self.text.find(s, start)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, s)
        return best

    def _partial_stop_suffix(self) -> int:
        """Length of the longest suffix of the text that is a proper prefix of some stop string."""
        hold = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(self.text)), hold, -1):
                if self.text.endswith(s[:k]):
                    hold = k
                    break
        return hold
