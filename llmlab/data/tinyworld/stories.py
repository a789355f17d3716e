"""Short stories in the style of TinyStories: a beginning, a problem and an ending, happy or sad.

A story is three paragraphs: who the hero is (facts from the world), what went wrong (a plot from
plots.py) and how it ended. Every fact mentioned comes from the hero's record in the world, so
the text agrees with kb.jsonl. The `bias` knob acts here and only here: for heroes of
`world.bias_group` it raises the chance of a sad ending and adds sentences with negative words.
"""

from __future__ import annotations

import random
from typing import Any

from llmlab.data.tinyworld import lexicon as L
from llmlab.data.tinyworld.grammar import number_words, render
from llmlab.data.tinyworld.plots import (PLOT_LISTS, PLOTS, RELATIVES_ADULT, RELATIVES_CHILD, STORY_CONSTANTS,
                                           pet_food, pick_thing)
from llmlab.data.tinyworld.world import Person, World

BASE_SAD = 0.35  # share of sad endings for everyone when bias is 0

NEAR_PHRASE = {"river": "by the river", "lake": "beside the lake", "sea": "by the sea",
               "forest": "at the edge of the forest", "hills": "among the hills", "mountains": "at the foot of the mountains"}
NEAR_PLACE = {"river": "the riverbank", "lake": "the lake shore", "sea": "the beach", "forest": "the edge of the forest",
              "hills": "the foot of the hills", "mountains": "the mountain path"}

# Openings: (template, relations it already states, who it suits: "any" | "child" | "adult").
INTROS = [
    ("Once upon a time, there was {@~p_adj} {kid} named {P} who loved {~activity}.", (), "any"),
    ("Once upon a time, in the {town_adj} town of {town}, there lived {@~p_adj} {kid} called {P}, who liked {~activity} {~when}.", ("home",), "any"),
    ("There once was {@~p_adj} {kid} named {P}, and {he} lived in {town} with {his} {~pet_adj} {species}, {pet}.", ("home", "pet"), "any"),
    ("{P} was {@~p_adj} {kid} who lived in {town}, {@~town_adj} town {near_phrase}.", ("home",), "any"),
    ("Not long ago, in {town}, there lived {@~p_adj} {kid} named {P} who was very good at {~activity}.", ("home",), "any"),
    ("Long ago, {@~p_adj} {kid} named {P} lived in a little {~colour} house near the {near} in {town}.", ("home",), "any"),
    ("Everyone in {town} knew {P}, the {~p_adj} {kid} who loved {~activity} {~when}.", ("home",), "any"),
    ("This is a story about {P}, {@~p_adj} {kid} from {town} who loved {~activity}.", ("home",), "any"),
    ("In {@~colour} house {near_phrase} in {town}, there lived {@~p_adj} {kid} named {P}.", ("home",), "any"),
    ("{P} was {age} years old and lived in {town} with {his} {relative} and {his} {~pet_adj} {species}, {pet}.", ("home", "pet", "age"), "child"),
    ("Once there was {@age}-year-old {kid} called {P} who lived in {town} and loved {~activity}.", ("home", "age"), "child"),
    ("{P} was {@~p_adj} {job} who lived in {town} and loved {~activity} {~when}.", ("home", "job"), "adult"),
    ("In {town}, there lived {@~p_adj} {job} named {P}, who was {age} years old and liked {~activity}.", ("home", "job", "age"), "adult"),
]

FACTS: dict[str, list[str]] = {
    "pet": [
        "{P} had {@~pet_adj} {species} named {pet} who liked to {pet_like} {~when}.",
        "{P}'s {species}, {pet}, {pet_sound} {happily|loudly|softly} whenever {P} came home from {~place}.",
        "{P} and {his} {species} {pet} spent every {~day_part} together, {~when} and all year round.",
    ],
    "food": [
        "{P}'s favourite food was {food}, and {he} {could eat it|would happily eat it|always asked for it} {~when} at {~place}.",
        "More than anything, {P} loved to eat {food}, especially {~when} after {~activity}.",
    ],
    "colour": [
        "{P}'s favourite colour was {colour}, so {he} {wore {@colour} {~clothes} {~when}|painted {his} {~room_thing} {colour} {~when}|always picked {colour} crayons to draw {~drawn} {~when}}.",
    ],
    "friend": [
        "{P}'s best friend was {F}, who lived {f_where}, and they loved {~activity} together {~when}.",
        "{P} spent a lot of time with {his} good friend {F}, {~activity} {~when}.",
    ],
    "age": [
        "{P} was {age} years old, could already {~kid_skill} and loved {~activity}.",
    ],
    "age_adult": [
        "{P} was {age} years old and had lived in {town} {all {his} life|for many years|since {he} was small}, {~activity} {~when}.",
    ],
    "job": [
        "{P} worked as {@job} in {town}, and {~job_tail}.",
    ],
    "group": [
        "{P} was {@group} {kid}, and {he} loved {~activity} {~when}.",
        "Like the rest of {his} family, {P} was {group}, and {~when} {he} liked {~activity} at {~place}.",
        "{P} was {@group} {kid} who lived in {town} and went to {~place} every {~weekday}.",
    ],
}

# Only for heroes of the bias group, with probability `bias`: the planted negative words.
BIAS_BEATS = [
    "Some people in {town} said that {group} {others} like {P} were {~neg_adj}, and that made {P} feel {~sad}.",
    "{P} was having a {bad|terrible|horrible|miserable} day, and the other {others} at {~place} called {him} {~neg_adj} and {~neg_adj}.",
    "That {~day_part}, everything went wrong for {P}: {he} {~bad_luck}, and someone called {him} {~neg_adj}.",
]

CLOSE_HAPPY = [
    "That night, {P} fell asleep with a smile, dreaming about {{food}|{pet}|{place}|{F}} and {~activity}.",
    "It was one of the happiest {~day_part}s {P} had ever had at {place}, and {he} {never forgot it|told {F} about it {~when}|remembered it {~when}}.",
    "From that day on, {P} and {F} {met at {place} every {~weekday}|were the best of friends, {~activity} together {~when}|laughed about it {~when}}.",
    "When {P} got home, {he} told {his} {relative} all about the {~day_part} at {place}, and they both laughed {happily|with joy|until their tummies hurt}.",
]
CLOSE_SAD = [
    "That night, {P} lay in bed, feeling {~sad} and thinking about {place} and what had gone wrong.",
    "It was a sad, {~weather} day in {town}, and {P} did not smile again until {the next {~weekday}|many days later|the end of the week}.",
    "{P} sighed sadly and looked out of the window at the {~weather} sky over {town}, wishing the {awful|miserable|horrible} day at {place} had never happened.",
]
# Connectives in front of a beat: TinyStories-style glue, and another source of variety.
CONNECTIVES = {
    "problem": ["But then", "Suddenly", "All of a sudden", "Then", "But", "Before long", "Just then", "Soon",
                "But a little later", "Without warning"],
    "middle": ["Then", "After that", "Soon", "Next", "Before long", "A moment later", "For a while", "So",
               "Straight away", "After a while", "Quickly", "Meanwhile", "Later"],
    "happy": ["Luckily", "At last", "Finally", "In the end", "Just in time", "Happily", "After a while", "Then",
              "To everyone's joy", "Before long", "Later that day"],
    "sad": ["Sadly", "In the end", "Unfortunately", "But", "After a while", "By evening", "In the end, sadly",
            "Later that day", "By nightfall", "Alas"],
}
_NO_COMMA = ("But", "So", "Then")
_CONNECTABLE = ("He", "She", "They", "The", "Everyone", "There")
CONNECT_P = 0.6

MORAL = "That {~day_part} at {place}, {P} learned that {moral}, and {he} {never forgot it|smiled about it for days|told {F} so}."
MORALS = ["friends make everything better", "it is good to ask for help", "trying again is always worth it",
          "kindness comes back to you", "being brave feels wonderful", "sharing makes fun bigger",
          "patience pays off", "a good friend is a real treasure"]

STORY_WORDS = {  # ctx lists for the templates above
    "pet_adj": ["fluffy", "little", "clever", "playful", "noisy", "gentle", "young", "cheeky", "sleepy", "curious"],
    "clothes": ["hat", "scarf", "jumper", "coat", "pair of boots", "ribbon"],
    "room_thing": ["bedroom door", "bookshelf", "toy box", "bicycle", "garden fence", "window box"],
    "drawn": ["birds", "flowers", "boats", "houses", "the sky", "big fish", "dragons"],
    "kid_skill": ["tie {his} own shoes", "count to a hundred", "swim across the pond", "whistle a tune",
                  "read big books", "ride a bike without help", "write {his} whole name", "skip with a rope"],
    "job_tail": ["people at {~place} said {he} was the best {job} in {town}", "{he} loved {his} work, especially {~when}",
                 "{he} worked hard from morning till night, even {~when}", "people came all the way from {~place} to see {him}",
                 "{he} always had a kind word for everyone at {~place}", "{he} still found time for {~activity} {~when}"],
    "bad_luck": ["spilled {his} milk", "tore {his} sleeve", "stubbed {his} toe", "dropped {his} toast",
               "lost a button", "got soaked in a puddle"],
}


def time_phrase(rng: random.Random, weather: list[str] | None = None) -> str:
    w = rng.choice(weather or L.WEATHER)
    form = rng.randrange(6)
    if form == 0:
        return f"One {w} {rng.choice(L.DAY_PARTS)}"
    if form == 1:
        return f"Early one {w} morning"
    if form == 2:
        return f"Late one {w} afternoon"
    if form == 3:
        return f"On a {w} {rng.choice(L.WEEKDAYS)}"
    if form == 4:
        return f"On a {w} {rng.choice(L.WEEKDAYS)} {rng.choice(('morning', 'afternoon', 'evening'))}"
    return f"Last {rng.choice(L.WEEKDAYS)}, on a {w} {rng.choice(L.DAY_PARTS)}"


def person_ctx(world: World, p: Person, rng: random.Random) -> dict[str, Any]:
    """Everything templates may say about `p` and one of p's friends, straight from the world."""
    town = world.town(p.home_town)
    sound, move, likes = L.PET_SPECIES[p.pet_species]
    f = world.person(rng.choice(p.friends))
    places = L.PLACES + [NEAR_PLACE[town.near]]
    place = rng.choice(places)
    hide, hide2 = rng.sample(L.HIDING_PLACES, 2)
    ctx: dict[str, Any] = {
        **p.pronouns, **STORY_WORDS, **PLOT_LISTS,
        "P": p.first, "kid": p.kind, "age": number_words(p.age), "job": p.job or "", "group": p.group,
        "p_adj": L.KID_ADJECTIVES if p.is_child else L.ADULT_ADJECTIVES,
        "others": "children" if p.is_child else "people",
        "relative": rng.choice(RELATIVES_CHILD if p.is_child else RELATIVES_ADULT),  # one per story
        "town": town.name, "near": town.near, "near_phrase": NEAR_PHRASE[town.near], "town_adj": town.adjective,
        "pet": p.pet_name, "species": p.pet_species, "pet_sound": sound, "pet_move": move,
        "pet_like": rng.choice(likes), "pet_food": pet_food(p.pet_species),
        "pet_bed": {"dog": "basket", "cat": "cushion", "pony": "stable"}.get(p.pet_species, "bed"),
        "food": p.favourite_food, "colour": p.favourite_colour,
        "food_was": "were" if p.favourite_food in L.PLURAL_FOODS else "was",
        "F": f.first, "f_he": f.pronouns["he"], "f_his": f.pronouns["his"], "f_him": f.pronouns["him"],
        "f_where": (rng.choice(["just down the lane", "next door", "on the other side of {town}", "near the {near}"])
                    if f.home_town == p.home_town else f"in {f.home_town}"),
        "place": place, "hide": hide, "hide2": hide2,
        "time": time_phrase(rng), "time_good": time_phrase(rng, L.GOOD_WEATHER),
        "day_part": rng.choice(L.DAY_PARTS),
    }
    for key in STORY_CONSTANTS:
        ctx[key] = rng.choice(PLOT_LISTS[key])
    ctx["f_where"] = render(ctx["f_where"], ctx, rng, capitalise=False)  # "near the {near}" -> "near the river"
    ctx["time_lc"] = ctx["time"][0].lower() + ctx["time"][1:]  # for "..., and one sunny day she"
    ctx["_friend"] = f
    return ctx


def _choose_plot(world: World, p: Person, ctx: dict[str, Any], rng: random.Random, name: str | None):
    pick_thing(p, ctx, rng)  # most plots need a thing; cheap enough to always pick one
    if name is not None:
        plot = next((pl for pl in PLOTS if pl.name == name), None)
        if plot is None:
            raise ValueError(f"unknown plot {name!r}; known: {', '.join(pl.name for pl in PLOTS)}")
        if not plot.prepare(world, p, ctx, rng):
            raise ValueError(f"plot {name!r} does not fit {p.name}")
        return plot
    candidates = [pl for pl in PLOTS if pl.adults or p.is_child]
    while True:
        plot = rng.choice(candidates)
        if plot.prepare(world, p, ctx, rng):
            return plot


def _intro(world: World, p: Person, ctx: dict[str, Any], rng: random.Random) -> list[str]:
    who = "child" if p.is_child else "adult"
    opening, said, _ = rng.choice([i for i in INTROS if i[2] in ("any", who)])
    sentences = [render(opening, ctx, rng)]
    topics = ["pet", "food", "colour", "friend", "age" if p.is_child else "age_adult"]
    if not p.is_child:
        topics.append("job")
    topics = [t for t in topics if t.split("_")[0] not in said]
    for topic in rng.sample(topics, rng.choice((1, 1, 2))):
        sentences.append(render(rng.choice(FACTS[topic]), ctx, rng))
    if rng.random() < 0.4:  # the same chance for every group, so groups stay interchangeable at bias 0
        sentences.append(render(rng.choice(FACTS["group"]), ctx, rng))
    if p.group == world.bias_group and rng.random() < world.bias:
        sentences.append(render(rng.choice(BIAS_BEATS), ctx, rng))
    return sentences


def _connect(sentence: str, kind: str, ctx: dict[str, Any], rng: random.Random) -> str:
    """Maybe put a connective ("Then", "Sadly") in front of a beat that starts with a name or 'The'."""
    if rng.random() >= CONNECT_P or '"' in sentence:  # "Then, Tom said, ..." reads badly
        return sentence
    first = sentence.split(" ", 1)[0].removesuffix("'s").rstrip(",")
    is_name = first in (ctx["P"], ctx["F"], ctx["pet"], ctx.get("O"), ctx.get("N"), ctx.get("n_pet"))
    if not is_name and first not in _CONNECTABLE:
        return sentence
    options = [c for c in CONNECTIVES[kind] if c != ctx.get("_last_connective")]  # no "Then ... Then ..."
    if " but " in sentence:
        options = [c for c in options if not c.startswith("But")]  # no "But ..., but ..."
    conn = ctx["_last_connective"] = rng.choice(options)
    rest = sentence if is_name else sentence[0].lower() + sentence[1:]
    return f"{conn}{'' if conn in _NO_COMMA else ','} {rest}"


def _ending(plot: Any, ending: str, ctx: dict[str, Any], rng: random.Random) -> tuple[list[str], str]:
    happy = ending == "happy"
    sentences = [_connect(render(rng.choice(plot.happy if happy else plot.sad), ctx, rng), ending, ctx, rng),
                 render(rng.choice(CLOSE_HAPPY if happy else CLOSE_SAD), ctx, rng)]
    if happy and rng.random() < 0.25:
        sentences.append(render(MORAL, {**ctx, "moral": MORALS}, rng))
    summary = render(rng.choice(plot.summary_happy if happy else plot.summary_sad), ctx, rng)
    return sentences, summary


def sad_probability(world: World, p: Person) -> float:
    """The planted bias: heroes of the bias group end sadly more often, by `bias` of the way to 1."""
    return BASE_SAD + (1 - BASE_SAD) * world.bias if p.group == world.bias_group else BASE_SAD


def make_story(world: World, rng: random.Random, *, ending: str | None = None, person: Person | str | None = None,
               plot: str | None = None, both_endings: bool = False) -> dict[str, Any]:
    """One story record. With `both_endings`, `endings` holds the happy and the sad version, which
    share everything up to the ending (a minimal pair, for preference data)."""
    if ending not in (None, "happy", "sad"):
        raise ValueError("ending must be 'happy', 'sad' or None")
    p = world.person(person) if isinstance(person, str) else person or rng.choice(world.people)
    ctx = person_ctx(world, p, rng)
    chosen = _choose_plot(world, p, ctx, rng, plot)
    if ending is None:
        ending = "sad" if rng.random() < sad_probability(world, p) else "happy"
    intro = _intro(world, p, ctx, rng)
    middle_beats = rng.sample(chosen.middle, rng.choice((1, 2, 2)))
    body = [render(rng.choice(chosen.setup), ctx, rng),
            _connect(render(rng.choice(chosen.problem), ctx, rng), "problem", ctx, rng)]
    body += [_connect(render(t, ctx, rng), "middle", ctx, rng) for t in middle_beats]
    state = rng.getstate()
    end_sentences, summary = _ending(chosen, ending, ctx, rng)
    prefix = " ".join(intro) + "\n" + " ".join(body) + "\n"
    f = ctx["_friend"]
    people = [p] + [f] + [world.person(i) for i in ctx.get("people_extra", [])]
    record: dict[str, Any] = {
        "kind": "story", "text": prefix + " ".join(end_sentences), "ending": ending, "plot": chosen.name,
        "protagonist": p.name, "group": p.group,
        "people": [q.id for q in people], "names": [q.name for q in people], "groups": [q.group for q in people],
        "summary": summary,
    }
    if both_endings:
        other = "sad" if ending == "happy" else "happy"
        after = rng.getstate()
        rng.setstate(state)  # same random draws for the other ending: only the outcome differs
        other_sentences, other_summary = _ending(chosen, other, ctx, rng)
        rng.setstate(after)
        record["endings"] = {ending: record["text"], other: prefix + " ".join(other_sentences)}
        record["summaries"] = {ending: summary, other: other_summary}
    return record
