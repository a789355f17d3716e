"""Text normalisation that undoes simple obfuscation before pattern matching.

`normalize_variants(text)` returns a few lowercase ASCII renderings of `text`, each with words
separated by single spaces and padded with one space at both ends. A pattern is checked
against every variant, so an obfuscation only has to be undone in one of them:

- Unicode: NFKC (full-width letters, ligatures), accents stripped (NFKD minus combining marks),
  invisible format characters removed (zero-width spaces/joiners), and common Cyrillic/Greek
  lookalikes mapped to their Latin twins ("kіll" with a Cyrillic i).
- Case: casefolded.
- Leetspeak: 0→o 1→i 3→e 4→a 5→s 7→t 8→b 9→g @→a $→s !→i |→l +→t, applied only inside words
  that also contain letters (so "2024" and "$100" stay numbers); a second variant reads 1 as l.
- Inserted separators: letters spaced or dotted apart ("k i l l", "k.i.l.l", "k-i-l-l") are
  rejoined; another variant deletes punctuation between letters ("ki.ll", "bo_mb"), and another
  keeps a one-letter word before spaced letters apart ("a b o m b" -> "a bomb").
- Apostrophes are deleted ("don't" → "dont"), other punctuation becomes a space.
Repeated letters ("kiiiill") are handled by the pattern compiler (each letter may repeat).
"""

from __future__ import annotations

import re
import unicodedata

# Cyrillic and Greek letters that render like Latin ones (lowercase; text is casefolded first).
CONFUSABLES = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "з": "3", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ӏ": "l",
    "ɡ": "g", "ո": "n", "ս": "u", "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ß": "ss", "ø": "o", "æ": "ae",
    "œ": "oe", "ł": "l", "đ": "d", "ı": "i",
}
LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
        "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e"}
LEET_ALT = {"1": "l"}
_LEET_CHARS = re.escape("".join(LEET))
_CHUNK = re.compile(rf"[a-z{_LEET_CHARS}]+")
_APOSTROPHES = re.compile(r"['’‘`´]")
_L = f"a-z{_LEET_CHARS}"
# Single characters set apart by one and the same separator: "k i l l", "k.i.l.l", "c_o_n".
_SPACED_LETTERS = re.compile(rf"(?<![{_L}])[{_L}](?P<sep>[ .\-_*·•~/\\])[{_L}](?:(?P=sep)[{_L}])+(?![{_L}])")
_INNER_PUNCT = re.compile(r"(?<=[a-z])[.\-_*·•~/\\]+(?=[a-z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")
ONE_LETTER_WORDS = "ai"


def fold_unicode(text: str) -> str:
    """NFKC, casefold, strip accents and invisible characters, map lookalikes."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(CONFUSABLES.get(ch, ch) for ch in text)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) not in ("Mn", "Cf"))


def _deleet(text: str, table: dict[str, str]) -> str:
    def fix(m: re.Match[str]) -> str:
        chunk = m.group(0)
        core = chunk.rstrip("!|")  # "kill!" ends a sentence, it is not "killi"
        if not re.search(r"[a-z]", core):
            return chunk
        return "".join(table.get(c, c) for c in core) + chunk[len(core):]

    return _CHUNK.sub(fix, text)


def _join_spaced(m: re.Match[str]) -> str:
    # At least three single characters: two ("i a") are more likely real one-letter words.
    return m.group(0).replace(m.group("sep"), "")


def _join_spaced_after_word(m: re.Match[str]) -> str:
    # "make a b o m b": the run swallows the article; keep a leading one-letter word ("a", "i") apart.
    run, sep = m.group(0), m.group("sep")
    if sep == " " and run[0] in ONE_LETTER_WORDS and len(run) >= 7:  # the word itself still has 3+ letters
        return run[:2] + run[2:].replace(sep, "")
    return _join_spaced(m)


def _finish(text: str) -> str:
    text = _NON_WORD.sub(" ", text).strip()
    return f" {text} "


def normalize_variants(text: str) -> list[str]:
    """The normalised renderings of `text` to match patterns against (see module doc)."""
    base = _APOSTROPHES.sub("", fold_unicode(text))
    variants: list[str] = []
    tables = [LEET]
    if any(c in base for c in LEET_ALT):
        tables.append({**LEET, **LEET_ALT})
    # Rejoin letters set apart by single separators ("k i l l", "7.a.k.e") before de-leeting,
    # so a leet character inside a spaced word is still seen as part of the word.
    joined = [_SPACED_LETTERS.sub(_join_spaced, base)]
    kept = _SPACED_LETTERS.sub(_join_spaced_after_word, base)
    if kept != joined[0]:
        joined.append(kept)
    for table in tables:
        for rejoined in joined:
            t = _deleet(rejoined, table)
            for v in (_finish(t), _finish(_INNER_PUNCT.sub("", t))):
                if v not in variants:
                    variants.append(v)
    return variants


def normalize(text: str) -> str:
    """The primary normalised rendering (first of `normalize_variants`)."""
    return normalize_variants(text)[0]
