"""The world itself: people, towns, shops and groups, drawn from a seed.

`World(seed)` is deterministic: it uses only its own `random.Random` and never iterates over a
set (string hashing changes between Python processes), so the same seed gives the same world in
every process, which is what lets worker processes rebuild it instead of receiving it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterator

from llmlab.data.tinyworld import lexicon as L
from llmlab.errors import ConfigError

_PRONOUNS = {
    "she": {"he": "she", "his": "her", "him": "her", "himself": "herself"},
    "he": {"he": "he", "his": "his", "him": "him", "himself": "himself"},
}


@dataclass(frozen=True)
class Person:
    id: str
    first: str
    family: str
    pronoun: str  # "she" or "he"
    age: int
    job: str | None  # children have none
    home_town: str
    pet_species: str
    pet_name: str
    favourite_food: str
    favourite_colour: str
    group: str
    friends: tuple[str, ...] = ()  # person ids

    @property
    def name(self) -> str:
        return f"{self.first} {self.family}"

    @property
    def is_child(self) -> bool:
        return self.age < 13

    @property
    def kind(self) -> str:
        """The noun a story uses for this person: girl, boy, woman, man, old woman, old man."""
        girl = self.pronoun == "she"
        if self.is_child:
            return "girl" if girl else "boy"
        noun = "woman" if girl else "man"
        return "old " + noun if self.age >= 70 else noun

    @property
    def pronouns(self) -> dict[str, str]:
        """Keys he/his/him/himself mapped to this person's words (she/her/her/herself for Mia)."""
        return _PRONOUNS[self.pronoun]


@dataclass(frozen=True)
class Town:
    name: str
    near: str  # river, lake, sea, forest, hills, mountains
    adjective: str


@dataclass(frozen=True)
class Shop:
    name: str  # "Golden Spoon"; texts write "the Golden Spoon"
    type: str  # bakery, café, ...
    town: str
    owner: str  # person id
    items: tuple[str, ...]

    @property
    def the(self) -> str:
        return "the " + self.name


@dataclass
class World:
    """A small world of people, towns and shops, built deterministically from `seed`.

    `bias` in [0, 1] sets how much more often stories about people of `bias_group` take a sad
    turn and carry negative words (0: all groups are treated alike).
    """

    seed: int = 0
    bias: float = 0.0
    n_people: int = 300
    n_towns: int = 10
    n_shops: int = 36
    people: list[Person] = field(init=False)
    towns: list[Town] = field(init=False)
    shops: list[Shop] = field(init=False)
    groups: list[str] = field(init=False)
    bias_group: str = field(init=False)
    unused_first_names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        if not 0.0 <= float(self.bias) <= 1.0:
            raise ConfigError(f"bias must be between 0 and 1, got {self.bias}")
        if not 20 <= self.n_people <= len(L.GIRL_NAMES) + len(L.BOY_NAMES) - 40:
            raise ConfigError(f"n_people must be between 20 and {len(L.GIRL_NAMES) + len(L.BOY_NAMES) - 40}")
        self.bias = float(self.bias)
        self.groups = list(L.GROUPS)
        self.bias_group = L.BIAS_GROUP
        rng = random.Random(f"tinyworld/world/{self.seed}")
        self.towns = self._make_towns(rng)
        self.people = self._make_people(rng)
        self.shops = self._make_shops(rng)

    # ---- building -------------------------------------------------------------------------

    def _make_towns(self, rng: random.Random) -> list[Town]:
        names: list[str] = []
        while len(names) < self.n_towns:
            name = rng.choice(L.TOWN_PREFIXES) + rng.choice(L.TOWN_SUFFIXES)
            if name not in names and not any(name[:4] == n[:4] for n in names):  # no Pinebrook/Pineford pairs
                names.append(name)
        return [Town(n, rng.choice(L.TOWN_FEATURES), rng.choice(L.TOWN_ADJECTIVES)) for n in names]

    def _make_people(self, rng: random.Random) -> list[Person]:
        n_girls = self.n_people // 2
        girls = rng.sample(L.GIRL_NAMES, n_girls)
        boys = rng.sample(L.BOY_NAMES, self.n_people - n_girls)
        self.unused_first_names = [n for n in L.GIRL_NAMES + L.BOY_NAMES if n not in girls and n not in boys]
        firsts = [(n, "she") for n in girls] + [(n, "he") for n in boys]
        rng.shuffle(firsts)
        people = []
        for i, (first, pronoun) in enumerate(firsts):
            band = rng.random()
            age = rng.randint(5, 12) if band < 0.45 else rng.randint(20, 69) if band < 0.9 else rng.randint(70, 90)
            species = rng.choice(list(L.PET_SPECIES))
            people.append(Person(
                id=f"p{i:03d}", first=first, family=rng.choice(L.FAMILY_NAMES), pronoun=pronoun, age=age,
                job=None if age < 13 else rng.choice(L.JOBS), home_town=rng.choice(self.towns).name,
                pet_species=species, pet_name=rng.choice(L.PET_NAMES), favourite_food=rng.choice(L.FOODS),
                favourite_colour=rng.choice(L.COLOURS), group=rng.choice(self.groups),
            ))
        return self._add_friends(people, rng)

    @staticmethod
    def _add_friends(people: list[Person], rng: random.Random) -> list[Person]:
        """2-4 friends each, symmetric, among people of the same age band, mostly in the same town."""
        friends: dict[str, list[str]] = {p.id: [] for p in people}
        order = people[:]
        rng.shuffle(order)
        for p in order:
            peers = [q for q in people if q.id != p.id and q.is_child == p.is_child and len(friends[q.id]) < 4
                     and q.id not in friends[p.id]]
            local = [q for q in peers if q.home_town == p.home_town]
            want = rng.randint(2, 4) - len(friends[p.id])
            for _ in range(max(0, want)):
                pool = local if local and rng.random() < 0.7 else peers
                if not pool:
                    break
                q = rng.choice(pool)
                friends[p.id].append(q.id)
                friends[q.id].append(p.id)
                for lst in (peers, local):
                    if q in lst:
                        lst.remove(q)
        for p in people:  # nobody is left friendless: a second pass ignores the cap of four
            if not friends[p.id]:
                q = rng.choice([q for q in people if q.id != p.id and q.is_child == p.is_child])
                friends[p.id].append(q.id)
                friends[q.id].append(p.id)
        return [_replace(p, friends=tuple(friends[p.id])) for p in people]

    def _make_shops(self, rng: random.Random) -> list[Shop]:
        names: list[str] = []
        while len(names) < self.n_shops:
            name = rng.choice(L.SHOP_ADJECTIVES) + " " + rng.choice(L.SHOP_NOUNS)
            if name not in names:
                names.append(name)
        types = list(L.SHOP_TYPES)
        shops = []
        owners: set[str] = set()
        for i, name in enumerate(names):
            town = self.towns[i % len(self.towns)]  # every town gets shops
            kind = types[(i // len(self.towns) + i) % len(types)] if i < len(self.towns) * 2 else rng.choice(types)
            adults = [p for p in self.people if not p.is_child and p.age < 70 and p.id not in owners]
            local = [p for p in adults if p.home_town == town.name]
            owner = rng.choice(local or adults)
            owners.add(owner.id)
            job, items = L.SHOP_TYPES[kind]
            shops.append(Shop(name, kind, town.name, owner.id, tuple(rng.sample(items, 4))))
            self.people[int(owner.id[1:])] = _replace(owner, job=job)  # the baker owns the bakery
        return shops

    # ---- look-ups ---------------------------------------------------------------------------

    @cached_property
    def _by_key(self) -> dict[str, Person]:
        index: dict[str, Person] = {}
        for p in self.people:
            index[p.id] = index[p.first] = index[p.name] = p
        return index

    def person(self, key: str) -> Person:
        """A person by id ("p012"), first name ("Mia") or full name ("Mia Lopez")."""
        try:
            return self._by_key[key]
        except KeyError:
            raise KeyError(f"no person {key!r} in this tinyworld") from None

    def has_person(self, key: str) -> bool:
        return key in self._by_key

    def town(self, name: str) -> Town:
        return next(t for t in self.towns if t.name == name)

    def shop(self, name: str) -> Shop:
        name = name[4:] if name.lower().startswith("the ") else name
        return next(s for s in self.shops if s.name == name)

    def shops_in(self, town: str) -> list[Shop]:
        return [s for s in self.shops if s.town == town]

    def friends_of(self, p: Person) -> list[Person]:
        return [self.person(f) for f in p.friends]

    def shop_owned_by(self, p: Person) -> Shop | None:
        return next((s for s in self.shops if s.owner == p.id), None)

    def unknown_names(self, pool: str = "probe") -> list[str]:
        """Full names of people who do not exist here: "probe" and "sft" pools never overlap.

        Probes (hallucination tests) use one half; SFT teaches "I don't know" with the other, so a
        model's answers on the probes are not memorised.
        """
        if pool not in ("probe", "sft"):
            raise ValueError("pool must be 'probe' or 'sft'")
        rng = random.Random(f"tinyworld/unknown/{self.seed}")
        firsts = self.unused_first_names[:]
        rng.shuffle(firsts)
        half = len(firsts) // 2
        chosen = firsts[:half] if pool == "probe" else firsts[half:]
        return [f"{f} {rng.choice(L.FAMILY_NAMES)}" for f in chosen]

    # ---- the knowledge base -----------------------------------------------------------------

    def triples(self) -> Iterator[dict[str, Any]]:
        """Every fact of the world as {subject, relation, object, subject_type, subject_id}."""
        for p in self.people:
            base = {"subject": p.name, "subject_type": "person", "subject_id": p.id}
            facts = [("pronoun", p.pronoun), ("age", str(p.age))]
            if p.job:
                facts.append(("job", p.job))
            facts += [("home_town", p.home_town), ("pet_species", p.pet_species), ("pet_name", p.pet_name),
                      ("favourite_food", p.favourite_food), ("favourite_colour", p.favourite_colour),
                      ("group", p.group)]
            facts += [("friend", self.person(f).name) for f in p.friends]
            for rel, obj in facts:
                yield {**base, "relation": rel, "object": obj}
        for t in self.towns:
            yield {"subject": t.name, "subject_type": "town", "subject_id": t.name, "relation": "near", "object": t.near}
        for s in self.shops:
            base = {"subject": s.name, "subject_type": "shop", "subject_id": s.name}
            yield {**base, "relation": "shop_type", "object": s.type}
            yield {**base, "relation": "located_in", "object": s.town}
            yield {**base, "relation": "owner", "object": self.person(s.owner).name}
            for item in s.items:
                yield {**base, "relation": "sells", "object": item}

    def to_json(self) -> dict[str, Any]:
        """The whole world as plain data (written to world.json)."""
        return {
            "seed": self.seed, "bias": self.bias, "groups": self.groups, "bias_group": self.bias_group,
            "people": [{**p.__dict__, "name": p.name, "friends": list(p.friends)} for p in self.people],
            "towns": [t.__dict__ for t in self.towns],
            "shops": [{**s.__dict__, "items": list(s.items)} for s in self.shops],
        }

    # ---- text generators (each takes an explicit rng so callers control determinism) --------

    def story(self, rng: random.Random, **kwargs: Any) -> dict[str, Any]:
        from llmlab.data.tinyworld.stories import make_story

        return make_story(self, rng, **kwargs)

    def stories(self, n: int, rng: random.Random, **kwargs: Any) -> list[dict[str, Any]]:
        """n story records: {kind, text, ending, people, names, groups, group, plot, summary}."""
        return [self.story(rng, **kwargs) for _ in range(n)]

    def fact_paragraphs(self, n: int, rng: random.Random) -> list[dict[str, Any]]:
        from llmlab.data.tinyworld.facts import fact_paragraph

        return [fact_paragraph(self, rng) for _ in range(n)]

    def dialogues(self, n: int, rng: random.Random) -> list[dict[str, Any]]:
        from llmlab.data.tinyworld.facts import qa_dialogue

        return [qa_dialogue(self, rng) for _ in range(n)]

    def questions(self, n: int, rng: random.Random) -> list[dict[str, Any]]:
        """n fact questions: {question, answer (short), answer_sentence, subject, relation}."""
        from llmlab.data.tinyworld.facts import fact_question

        return [fact_question(self, rng) for _ in range(n)]

    def reviews(self, n: int, rng: random.Random, **kwargs: Any) -> list[dict[str, Any]]:
        from llmlab.data.tinyworld.reviews import make_review

        return [make_review(self, rng, **kwargs) for _ in range(n)]

    def word_problems(self, n: int, rng: random.Random, **kwargs: Any) -> list[dict[str, Any]]:
        from llmlab.data.tinyworld.arithmetic import word_problem

        return [word_problem(self, rng, **kwargs) for _ in range(n)]

    def requests(self, n: int, rng: random.Random, **kwargs: Any) -> list[dict[str, Any]]:
        """n request pairs: a harmful request and its harmless look-alike, each with responses."""
        from llmlab.data.tinyworld.safety import request_pair

        return [request_pair(self, rng, **kwargs) for _ in range(n)]

    def check_text(self, text: str) -> list[Any]:
        """Parse the facts a text states and compare them with this world (see parse.py)."""
        from llmlab.data.tinyworld.parse import check_text

        return check_text(self, text)


def _replace(p: Person, **changes: Any) -> Person:
    return Person(**{**p.__dict__, **changes})
