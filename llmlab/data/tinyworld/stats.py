"""Diversity statistics of generated text: distinct-n, sentence templates and duplicate sentences.

Definitions (the numbers in docs/tinyworld.md use exactly these):
- words: lower-cased `\\w+|[^\\w\\s]` tokens (tokens.py); n-grams do not cross document boundaries.
- distinct-n: distinct n-grams / total n-grams, over the whole corpus given.
- sentence: text split after . ! or ? (and a closing quote) when followed by a space and a capital
  or a quote, and at line breaks.
- duplicate-sentence rate: the share of sentences whose exact text appeared earlier in the corpus.
- sentence template: a sentence with every world filler (names, pets, towns, shops, numbers, and the
  word lists of lexicon.py such as foods, colours, toys, places) replaced by its category, with
  runs of the same category merged. Distinct templates count sentence shapes, not fillers.

Sets hold 64-bit hashes, not strings, so a 10M-token corpus fits in a few hundred MB.
"""

from __future__ import annotations

import re
from typing import Iterable

from llmlab.data.tinyworld import lexicon as L
from llmlab.data.tinyworld.plots import ADULT_THINGS
from llmlab.data.tinyworld.tokens import TOKEN_PATTERN

_TOKEN = re.compile(TOKEN_PATTERN)
_SENTENCE_SPLIT = re.compile(r'(?<=[.!?])"?\s+(?=["A-Z])|\n+')


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_SPLIT.split(text) if s.strip()]


def _filler_categories(world) -> dict[str, str]:
    """word -> category for every filler word (multi-word fillers contribute each word)."""
    cats: dict[str, str] = {}

    def add(words: Iterable[str], cat: str) -> None:
        for phrase in words:
            for w in _TOKEN.findall(phrase.lower()):
                cats.setdefault(w, cat)

    add([p.first for p in world.people] + L.FAMILY_NAMES + L.GIRL_NAMES + L.BOY_NAMES, "NAME")
    add(L.PET_NAMES, "PET")
    add([t.name for t in world.towns], "TOWN")
    add(L.SHOP_ADJECTIVES + L.SHOP_NOUNS, "SHOP")
    add(L.GROUPS, "GROUP")
    add(L.NUMBER_WORDS + list(L.TENS_WORDS.values()), "NUM")
    add(L.COLOURS, "COLOUR")
    add(L.FOODS, "FOOD")
    add(L.TOYS + ADULT_THINGS + L.OBJECT_ADJECTIVES, "THING")
    add(L.JOBS, "JOB")
    add(list(L.PET_SPECIES), "SPECIES")
    add(L.PLACES + L.HIDING_PLACES, "PLACE")
    add(L.ACTIVITIES, "ACTIVITY")
    add(L.WEATHER + L.DAY_PARTS + L.WEEKDAYS + L.TIMES_OF_YEAR, "TIME")
    add(L.KID_ADJECTIVES + L.ADULT_ADJECTIVES + L.HAPPY_FEELINGS + L.SAD_FEELINGS, "ADJ")
    for items in L.SHOP_TYPES.values():
        add(items[1], "ITEM")
    return cats


def template_of(sentence: str, categories: dict[str, str]) -> str:
    out: list[str] = []
    for tok in _TOKEN.findall(sentence.lower()):
        tag = "NUM" if tok.isdigit() else categories.get(tok, tok)
        if not (out and tag == out[-1] and tag.isupper()):
            out.append(tag)
    return " ".join(out)


class DiversityCounter:
    """Feed it documents; read distinct-n, templates and the duplicate-sentence rate."""

    def __init__(self, world, max_n: int = 4):
        self.max_n = max_n
        self.ngrams = [set() for _ in range(max_n)]
        self.total = [0] * max_n
        self.sentence_hashes: set[int] = set()
        self.template_hashes: set[int] = set()
        self.n_sentences = 0
        self.n_duplicates = 0
        self.vocab: set[str] = set()
        self.categories = _filler_categories(world)

    def add(self, text: str) -> None:
        words = _TOKEN.findall(text.lower())
        self.vocab.update(words)
        for n in range(1, self.max_n + 1):
            grams = self.ngrams[n - 1]
            k = len(words) - n + 1
            if k <= 0:
                continue
            self.total[n - 1] += k
            if n == 1:
                grams.update(hash(w) for w in words)
            else:
                grams.update(hash(tuple(words[i:i + n])) for i in range(k))
        for s in sentences(text):
            h = hash(s)
            self.n_sentences += 1
            if h in self.sentence_hashes:
                self.n_duplicates += 1
            else:
                self.sentence_hashes.add(h)
                self.template_hashes.add(hash(template_of(s, self.categories)))

    def result(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {f"distinct_{n}": (len(self.ngrams[n - 1]) / self.total[n - 1]
                                                           if self.total[n - 1] else 0.0)
                                       for n in range(1, self.max_n + 1)}
        out.update(sentences=self.n_sentences, distinct_sentences=len(self.sentence_hashes),
                   duplicate_sentence_rate=self.n_duplicates / max(1, self.n_sentences),
                   sentence_templates=len(self.template_hashes), vocabulary=len(self.vocab),
                   words=self.total[0])
        return out


def duplicate_sentence_rate(texts: Iterable[str]) -> float:
    """The duplicate-sentence rate alone (cheaper than a full DiversityCounter)."""
    seen: set[int] = set()
    total = dups = 0
    for text in texts:
        for s in sentences(text):
            h = hash(s)
            total += 1
            dups += h in seen
            seen.add(h)
    return dups / max(1, total)
