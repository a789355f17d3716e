"""Seeded text obfuscations, the kinds a filter must see through (red-team prompt variants).

`obfuscate(text, method, seed)` rewrites the words of `text` that are at least four letters
long (a random subset, always at least one) with one method:

    leet        k1ll, $t3al        spaced     k i l l            dotted     k.i.l.l / ki-ll
    homoglyph   Cyrillic lookalikes (kіll)    accents    kíll               repeat     kiiiill
    zerowidth   k\u200bill         fullwidth  ｋｉｌｌ              case       kIlL
    mixed       two of the above
"""

from __future__ import annotations

import random

from llmlab.errors import ConfigError

METHODS = ("leet", "spaced", "dotted", "homoglyph", "accents", "repeat", "zerowidth", "fullwidth", "case", "mixed")
_LEET = {"a": "4@", "e": "3", "i": "1!", "o": "0", "s": "5$", "t": "7", "b": "8", "g": "9"}
_HOMO = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "i": "і", "y": "у"}
_ACCENT = {"a": "áàâä", "e": "éèêë", "i": "íìîï", "o": "óòôö", "u": "úùûü", "n": "ñ", "c": "ç"}


def _word(w: str, method: str, rng: random.Random) -> str:
    letters = [i for i, c in enumerate(w) if c.isalpha()]
    if method == "leet":
        out = [(rng.choice(_LEET[c.lower()]) if c.lower() in _LEET and rng.random() < 0.6 else c) for c in w]
        if out == list(w):  # make sure something changed
            for i, c in enumerate(w):
                if c.lower() in _LEET:
                    out[i] = _LEET[c.lower()][0]
                    break
        return "".join(out)
    if method == "spaced":
        return " ".join(w)
    if method == "dotted":
        if rng.random() < 0.5:
            return rng.choice(".-_").join(w)
        cut = rng.randint(1, len(w) - 1)
        return w[:cut] + rng.choice(".-*_") + w[cut:]
    if method == "homoglyph":
        out = [(_HOMO[c] if c in _HOMO and rng.random() < 0.7 else c) for c in w]
        return "".join(out)
    if method == "accents":
        return "".join(rng.choice(_ACCENT[c]) if c in _ACCENT and rng.random() < 0.7 else c for c in w)
    if method == "repeat":
        i = rng.choice(letters)
        return w[:i] + w[i] * rng.randint(3, 5) + w[i + 1:]
    if method == "zerowidth":
        i = rng.randint(1, len(w) - 1)
        return w[:i] + rng.choice(["\u200b", "\u200c", "\u200d", "\u2060"]) + w[i:]
    if method == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in w)
    if method == "case":
        return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in w)
    raise ConfigError(f"unknown obfuscation method {method!r}; choose from {', '.join(METHODS)}")


def obfuscate(text: str, method: str = "leet", seed: int = 0, fraction: float = 0.5) -> str:
    """Obfuscate a random `fraction` (at least one) of the words with 4+ letters."""
    if method not in METHODS:
        raise ConfigError(f"unknown obfuscation method {method!r}; choose from {', '.join(METHODS)}")
    rng = random.Random(f"{seed}:{method}:{text}")
    if method == "mixed":
        first, second = rng.sample([m for m in METHODS if m not in ("mixed", "spaced")], 2)
        return obfuscate(obfuscate(text, first, seed, fraction), second, seed + 1, fraction)
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) >= 4 and w.isascii()]
    if not candidates:
        candidates = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) >= 2]
    if not candidates:
        return text
    k = max(1, round(fraction * len(candidates)))
    if method == "spaced":  # spacing every word would be unreadable; real attacks space one or two
        k = min(k, 2)
    for i in rng.sample(candidates, k):
        core_end = len(words[i].rstrip(".,!?;:"))
        words[i] = _word(words[i][:core_end], method, rng) + words[i][core_end:]
    if method == "spaced":
        return "  ".join(words)  # spaced words are set off by double spaces, as people write them
    return " ".join(words)
