"""A tiny template language, so the text generators read like the text they write.

    render("{time}, {P} took {his} {obj} to {place|the park}. {^he} was {@~kid_adj} {kid}.", ctx, rng)

- `{name}`     the value of `ctx[name]`; when that value is a list or tuple, a random element of it
               (an element may itself be a template: "tidying {his} room").
- `{a|b|c}`    one of the alternatives, chosen at random; alternatives may be empty and may hold slots.
- `{~words}`   a fresh random word from `ctx["words"]` when that is a list, else from `WORDS["words"]`.
- `{^...}`     the value with its first letter in capitals (for a slot that starts a sentence).
- `{@...}`     the value with "a" or "an" in front ("an orange kite").

Templates are parsed once and cached, so rendering costs a few list look-ups per slot: that is what
keeps generation fast enough for tens of millions of tokens.
"""

from __future__ import annotations

import random
import re
from typing import Any, Mapping

from llmlab.data.tinyworld import lexicon as L

# Shared word lists for `{~name}` slots.
WORDS: dict[str, list[str]] = {
    "kid_adj": L.KID_ADJECTIVES,
    "adult_adj": L.ADULT_ADJECTIVES,
    "activity": L.ACTIVITIES,
    "weather": L.WEATHER,
    "good_weather": L.GOOD_WEATHER,
    "day_part": L.DAY_PARTS,
    "weekday": L.WEEKDAYS,
    "place": L.PLACES,
    "hiding_place": L.HIDING_PLACES,
    "happy": L.HAPPY_FEELINGS,
    "sad": L.SAD_FEELINGS,
    "colour": L.COLOURS,
    "town_adj": L.TOWN_ADJECTIVES,
    "obj_adj": L.OBJECT_ADJECTIVES,
    "when": L.TIMES_OF_YEAR,
    "neg_adj": L.NEGATIVE_ADJECTIVES,
    "song": ["happy", "silly", "little", "cheerful", "sleepy", "funny", "marching", "humming"],
}

_Part = Any  # str | ("slot", flags, name) | ("alt", flags, [parts...])
_CACHE: dict[str, list[_Part]] = {}


def _parse(template: str, i: int = 0, depth: int = 0) -> tuple[list[list[_Part]], int]:
    """Parse from `i` until the matching '}' (or the end); return the '|'-separated alternatives."""
    alternatives: list[list[_Part]] = [[]]
    text = []
    while i < len(template):
        ch = template[i]
        if ch == "{":
            if text:
                alternatives[-1].append("".join(text))
                text = []
            flags = ""
            i += 1
            while i < len(template) and template[i] in "^@~":
                flags += template[i]
                i += 1
            inner, i = _parse(template, i, depth + 1)
            if len(inner) == 1 and len(inner[0]) == 1 and isinstance(inner[0][0], str) and "~" not in flags:
                alternatives[-1].append(("slot", flags, inner[0][0]))
            elif len(inner) == 1 and len(inner[0]) == 1 and isinstance(inner[0][0], str):
                alternatives[-1].append(("words", flags, inner[0][0]))
            else:
                alternatives[-1].append(("alt", flags, inner))
            continue
        elif ch == "}":
            if depth == 0:
                raise ValueError(f"unbalanced '}}' in template: {template!r}")
            if text:
                alternatives[-1].append("".join(text))
            return alternatives, i + 1
        elif ch == "|" and depth > 0:
            if text:
                alternatives[-1].append("".join(text))
                text = []
            alternatives.append([])
            i += 1
            continue
        else:
            text.append(ch)
        i += 1
    if depth > 0:
        raise ValueError(f"unclosed '{{' in template: {template!r}")
    if text:
        alternatives[-1].append("".join(text))
    return alternatives, i


def compile_template(template: str) -> list[_Part]:
    parts = _CACHE.get(template)
    if parts is None:
        alternatives, _ = _parse(template)
        parts = _CACHE[template] = alternatives[0]
    return parts


def _apply(value: str, flags: str) -> str:
    if "@" in flags:
        value = article(value) + " " + value
    if "^" in flags:
        value = value[:1].upper() + value[1:]
    return value


def _render_parts(parts: list[_Part], ctx: Mapping[str, Any], rng: random.Random, out: list[str]) -> None:
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        kind, flags, body = part
        if kind == "slot":
            value = ctx[body]
            if isinstance(value, (list, tuple)):
                value = rng.choice(value)
                if "{" in value:  # a list entry may itself be a template ("tidying {his} room")
                    value = render(value, ctx, rng, capitalise=False)
        elif kind == "words":
            words = ctx.get(body)
            value = rng.choice(words if isinstance(words, (list, tuple)) else WORDS[body])
            if "{" in value:
                value = render(value, ctx, rng, capitalise=False)
        else:
            sub: list[str] = []
            _render_parts(rng.choice(body), ctx, rng, sub)
            value = "".join(sub)
        out.append(_apply(value, flags) if flags else value)


_SPACES = re.compile(r"  +| (?=[,.!?])")


def render(template: str, ctx: Mapping[str, Any], rng: random.Random, capitalise: bool = True) -> str:
    """Fill one template; the result starts with a capital letter unless `capitalise` is False."""
    out: list[str] = []
    _render_parts(compile_template(template), ctx, rng, out)
    text = "".join(out)
    if "  " in text or " ," in text or " ." in text:
        text = _SPACES.sub(lambda m: " " if m.group(0).startswith("  ") else "", text)
    return text[:1].upper() + text[1:] if capitalise else text


def article(word: str) -> str:
    """'a' or 'an' for the word that follows (by sound, for the words tinyworld uses)."""
    w = word.lower()
    if w.startswith(("uni", "use", "one", "eu")):
        return "a"
    if w.startswith(("hour", "honest")):
        return "an"
    return "an" if w[:1] in "aeiou" else "a"


def number_words(n: int) -> str:
    """0..99 as English words ("forty-two"), the way a children's story writes ages."""
    if not 0 <= n < 100:
        return str(n)
    if n < 20:
        return L.NUMBER_WORDS[n]
    tens, ones = divmod(n, 10)
    return L.TENS_WORDS[tens * 10] + ("-" + L.NUMBER_WORDS[ones] if ones else "")


def join_and(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
