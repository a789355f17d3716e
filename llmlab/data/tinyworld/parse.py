"""Read facts back out of text and check them against the world.

`check_text(world, text)` finds every statement of a world fact that tinyworld's phrasings make
("Mia's dog Biscuit", "Tom Park lives in Oakford", "the Golden Spoon, the bakery in Pinebrook") and
returns one `Claim` per statement, with `ok` telling whether the world agrees. The tests use it to
prove that generated texts never contradict kb.jsonl; an evaluator can use it to score a model's
answers for hallucinated facts.

How a claim finds its subject: person facts are cues ("lives in X", "'s favourite food is X")
that belong to the nearest person mentioned before them in the same sentence: a name, or a
pronoun (she/he/her/his) that stands for the last person of that gender named so far. Shop and
town facts name their subject inside the pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from llmlab.data.tinyworld import lexicon as L
from llmlab.data.tinyworld.grammar import number_words
from llmlab.data.tinyworld.world import Person, World

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")


@dataclass(frozen=True)
class Claim:
    subject: str  # a person's full name, a shop or a town
    relation: str  # a kb.jsonl relation (plus "family_name" for a wrong surname)
    stated: str  # what the text says
    expected: tuple[str, ...]  # what the world says (any of them is right)
    ok: bool
    start: int  # character offset of the statement in the text


def _alt(words: list[str]) -> str:
    # Longest first, so "guinea pig" wins over "pig" and "apple pie" over "apple".
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


class _Patterns:
    """Regexes for one world (names and shops differ between worlds), built once and cached."""

    def __init__(self, world: World):
        self.world = world
        firsts = [p.first for p in world.people]
        self.name = re.compile(rf"\b({_alt(firsts)})(?: ({_alt(L.FAMILY_NAMES)}))?\b(?!-)")
        self.pronoun = re.compile(r"\b(she|he|her|his|She|He|Her|His)\b")
        towns = _alt([t.name for t in world.towns])
        shops = _alt([s.name for s in world.shops])
        name_list = rf"((?:(?:{_alt(firsts)})(?: (?:{_alt(L.FAMILY_NAMES)}))?(?:, | and |,? and )?)+)"
        num = rf"(\d+|{_alt([number_words(n) for n in range(100)])})"
        species, jobs, foods = _alt(list(L.PET_SPECIES)), _alt(L.JOBS), _alt(L.FOODS)
        colours, groups, pets = _alt(L.COLOURS), _alt(L.GROUPS), _alt(L.PET_NAMES)
        poss = r"(?:'s|\b[Hh]er|\b[Hh]is)"
        # (relation, regex, group index of the value) for facts that belong to the nearest person.
        self.person_cues: list[tuple[str, re.Pattern[str]]] = [
            ("home_town", re.compile(rf"\b(?:lives|lived|has lived|had lived) in ({towns})\b")),
            ("home_town", re.compile(rf"\b(?:is|was|comes|came) from ({towns})\b")),
            ("home_town", re.compile(rf"\ban? (?:\w+ )?(?:girl|boy|man|woman) from ({towns})\b")),
            ("age", re.compile(rf"\b(?:is|was|turned) {num} years old\b")),
            ("age", re.compile(rf"\b(?:is|was) an? {num}-year-old\b")),
            ("job", re.compile(rf"\b(?:is|was|works as|worked as) an? (?:[\w-]+ ){{0,2}}?({jobs})\b")),
            ("pet", re.compile(rf"\b(?:has|had|owns|owned) an? (?:\w+ )?({species}) (?:named|called) ({pets})\b")),
            ("pet", re.compile(rf"{poss} (?:pet )?(?:\w+ )?({species}),? ({pets})\b")),
            ("pet", re.compile(rf"{poss} (?:pet )?({species}) (?:is|was) (?:called|named) ({pets})\b")),
            ("pet", re.compile(rf"{poss} pet (?:is|was) an? ({species}) (?:called|named) ({pets})\b")),
            ("favourite_food", re.compile(rf"{poss} favourite food (?:is|was) ({foods})\b")),
            ("favourite_colour", re.compile(rf"{poss} favourite colour (?:is|was) ({colours})\b")),
            ("friend", re.compile(rf"{poss} (?:best |good |old )?friends? (?:is |was |are |were )?{name_list}")),
            ("friend", re.compile(rf"\b(?:is|was|are|were) (?:good |best )?friends with {name_list}")),
            ("group", re.compile(rf"\b(?:is|was) (?:an? )?({groups})\b")),
            ("group", re.compile(rf"\b(?:is|was) one of the ({groups})\b")),
            ("owner", re.compile(rf"\b(?:owns|owned|runs|ran) the ({shops})\b")),
        ]
        # "Tom, the baker": tried only right after a name (re.match at the name's end).
        self.appositive_job = re.compile(rf", the ({jobs})\b")
        near = _alt(list(L.TOWN_FEATURES))
        self.other_cues: list[tuple[str, re.Pattern[str]]] = [
            ("shop_at", re.compile(rf"\b[Tt]he ({shops}),? (?:is |was )?(?:the|a|an) (?:\w+ )?({_alt(list(L.SHOP_TYPES))}) in ({towns})\b")),
            ("shop_type", re.compile(rf"\b[Tt]he ({shops}) (?:is|was) an? ({_alt(list(L.SHOP_TYPES))})\b")),
            ("located_in", re.compile(rf"\b[Tt]he ({shops}) (?:is |was )?in ({towns})\b")),
            ("owner", re.compile(rf"\b[Tt]he ({shops}) (?:is|was) (?:owned|run) by ({_alt(firsts)})(?: ({_alt(L.FAMILY_NAMES)}))?\b")),
            ("sells", re.compile(rf"\b[Tt]he ({shops}) sells ([a-z ,-]+)")),
            ("near", re.compile(rf"\b({towns}),? (?:is |was )?an? (?:\w+ )?(?:town|village) (?:by|beside|near|at the edge of|among|at the foot of) the ({near})\b")),
            ("near", re.compile(rf"\bnear the ({near}) in ({towns})\b")),
            ("residents", re.compile(rf"\b[Pp]eople who live in ({towns}) (?:are|include) {name_list}")),
            ("shops_in", re.compile(rf"\b[Ss]hops in ({towns}) (?:are|include) ((?:the (?:{shops})(?:, an? [a-z ]+?)?(?:, | and |,? and )?)+)")),
        ]
        self.first_to_person = {p.first: p for p in world.people}
        self.age_words = {number_words(n): n for n in range(100)}
        self.shop_names = re.compile(rf"the ({shops})")
        self.names_in = re.compile(rf"\b({_alt(firsts)})(?: ({_alt(L.FAMILY_NAMES)}))?\b")


def _patterns(world: World) -> _Patterns:
    cached = world.__dict__.get("_parse_patterns")
    if cached is None:
        cached = world.__dict__["_parse_patterns"] = _Patterns(world)
    return cached


def check_text(world: World, text: str) -> list[Claim]:
    """Every world fact that `text` states, each checked against the world."""
    pat = _patterns(world)
    claims: list[Claim] = []
    last_by_gender: dict[str, Person] = {}
    for m in _SENTENCE.finditer(text):
        sentence, offset = m.group(0), m.start()
        refs: list[tuple[int, int, Person]] = []  # (start, end, person), in order
        for n in pat.name.finditer(sentence):
            p = pat.first_to_person[n.group(1)]
            refs.append((n.start(), n.end(), p))
            if n.group(2) and n.group(2) != p.family:
                claims.append(Claim(p.name, "family_name", n.group(2), (p.family,), False, offset + n.start()))
        for n in pat.pronoun.finditer(sentence):
            refs.append((n.start(), n.end(), None))  # resolved in order below
        refs.sort(key=lambda r: r[0])
        resolved: list[tuple[int, int, Person]] = []
        for start, end, p in refs:
            if p is None:
                gender = "she" if sentence[start:end].lower() in ("she", "her") else "he"
                p = last_by_gender.get(gender)
                if p is None:
                    continue
            else:
                last_by_gender[p.pronoun] = p
            resolved.append((start, end, p))
        claims += _person_claims(world, pat, sentence, offset, resolved)
        claims += _other_claims(world, pat, sentence, offset)
    return claims


def _person_claims(world: World, pat: _Patterns, sentence: str, offset: int,
                   refs: list[tuple[int, int, Person]]) -> list[Claim]:
    out: list[Claim] = []
    for start, end, p in refs:
        m = pat.appositive_job.match(sentence, end)
        if m:
            out.append(_check_person(world, pat, p, "job", m.group(1), offset + m.start()))
    for relation, rx in pat.person_cues:
        for m in rx.finditer(sentence):
            owner = [r for r in refs if r[0] <= m.start()]
            if not owner:
                continue
            p = owner[-1][2]
            if relation == "pet":
                out.append(_check_person(world, pat, p, "pet_species", m.group(1), offset + m.start()))
                out.append(_check_person(world, pat, p, "pet_name", m.group(2), offset + m.start()))
            elif relation == "friend":
                for f in pat.names_in.finditer(m.group(1)):
                    out.append(_check_person(world, pat, p, "friend", f.group(0), offset + m.start()))
            else:
                out.append(_check_person(world, pat, p, relation, m.group(1), offset + m.start()))
    return out


def _check_person(world: World, pat: _Patterns, p: Person, relation: str, stated: str, at: int) -> Claim:
    if relation == "age":
        value = int(stated) if stated.isdigit() else pat.age_words[stated]
        return Claim(p.name, "age", str(value), (str(p.age),), value == p.age, at)
    if relation == "friend":
        friends = world.friends_of(p)
        first = stated.split(" ")[0]
        friend = next((f for f in friends if f.first == first), None)
        ok = friend is not None and stated in (friend.first, friend.name)
        return Claim(p.name, "friend", stated, tuple(f.name for f in friends), ok, at)
    if relation == "owner":
        shop = world.shop(stated)
        return Claim(shop.name, "owner", p.name, (world.person(shop.owner).name,), shop.owner == p.id, at)
    expected = getattr(p, relation)
    return Claim(p.name, relation, stated, (str(expected),), stated == str(expected), at)


def _other_claims(world: World, pat: _Patterns, sentence: str, offset: int) -> list[Claim]:
    out: list[Claim] = []

    def add(subject: str, relation: str, stated: str, expected: list[str], at: int) -> None:
        out.append(Claim(subject, relation, stated, tuple(expected), stated in expected, offset + at))

    for relation, rx in pat.other_cues:
        for m in rx.finditer(sentence):
            if relation in ("shop_at", "shop_type", "located_in", "owner", "sells"):
                shop = world.shop(m.group(1))
                if relation in ("shop_at", "shop_type"):
                    add(shop.name, "shop_type", m.group(2), [shop.type], m.start())
                if relation == "shop_at":
                    add(shop.name, "located_in", m.group(3), [shop.town], m.start())
                if relation == "located_in":
                    add(shop.name, "located_in", m.group(2), [shop.town], m.start())
                if relation == "owner":
                    stated = m.group(2) + (" " + m.group(3) if m.group(3) else "")
                    owner = world.person(shop.owner)
                    add(shop.name, "owner", stated, [owner.name, owner.first], m.start())
                if relation == "sells":
                    for item in re.split(r", | and ", m.group(2).strip()):
                        if item:
                            add(shop.name, "sells", item.strip(), list(shop.items), m.start())
            elif relation == "near":
                town_first = m.group(1) in [t.name for t in world.towns]
                town, feature = (m.group(1), m.group(2)) if town_first else (m.group(2), m.group(1))
                add(town, "near", feature, [world.town(town).near], m.start())
            elif relation == "residents":
                for n in pat.names_in.finditer(m.group(2)):
                    p = pat.first_to_person[n.group(1)]
                    add(p.name, "home_town", m.group(1), [p.home_town], m.start())
            elif relation == "shops_in":
                for s in pat.shop_names.finditer(m.group(2)):
                    shop = world.shop(s.group(1))
                    add(shop.name, "located_in", m.group(1), [shop.town], m.start())
    return out


def wrong_claims(world: World, text: str) -> list[Claim]:
    """Only the statements that contradict the world (what a hallucination check reports)."""
    return [c for c in check_text(world, text) if not c.ok]


def mentioned_people(world: World, text: str) -> list[Any]:
    """The world's people named in `text`, in order of first mention."""
    pat = _patterns(world)
    seen: dict[str, Person] = {}
    for m in pat.name.finditer(text):
        seen.setdefault(m.group(1), pat.first_to_person[m.group(1)])
    return list(seen.values())
