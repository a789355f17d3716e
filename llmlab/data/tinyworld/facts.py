"""Facts in three voices: encyclopedia paragraphs, single questions with answers, and dialogues.

All three read from the world, never from a story, so they are the "ground truth" side of the
knowledge base. A fact question carries its short `answer` (what evaluators compare with exact
match) and the full `answer_sentence` (what a model is trained to say).
"""

from __future__ import annotations

import random
from typing import Any

from llmlab.data.tinyworld.grammar import article, join_and, number_words
from llmlab.data.tinyworld.stories import NEAR_PHRASE
from llmlab.data.tinyworld.world import Person, Shop, World

# relation -> question phrasings ({name} is the person's full name).
PERSON_QUESTIONS = {
    "home_town": ["Where does {name} live?", "Which town is {name} from?", "What is {name}'s home town?",
                  "In which town does {name} live?"],
    "age": ["How old is {name}?", "What is {name}'s age?", "How many years old is {name}?"],
    "job": ["What is {name}'s job?", "What does {name} do for a living?", "What job does {name} have?",
            "What does {name} work as?"],
    "pet_species": ["What kind of pet does {name} have?", "What animal does {name} keep as a pet?",
                    "Which kind of animal is {name}'s pet?"],
    "pet_name": ["What is the name of {name}'s {species}?", "What is {name}'s pet called?",
                 "What did {name} name {his} {species}?"],
    "favourite_food": ["What is {name}'s favourite food?", "Which food does {name} like best?",
                       "What does {name} love to eat most?"],
    "favourite_colour": ["What is {name}'s favourite colour?", "Which colour does {name} like best?"],
    "friend": ["Who are {name}'s friends?", "Who is {name} friends with?", "Can you name {name}'s friends?"],
    "group": ["Which group does {name} belong to?", "Is {name} Zorani, Melvish or Quorran?",
              "Which of the three peoples is {name} part of?"],
}
SHOP_QUESTIONS = {
    "located_in": ["Where is {shop}?", "In which town is {shop}?", "Which town is {shop} in?"],
    "shop_type": ["What kind of shop is {shop}?", "What sort of place is {shop}?"],
    "owner": ["Who owns {shop}?", "Who runs {shop}?", "Whose shop is {shop}?"],
    "sells": ["What does {shop} sell?", "What can you buy at {shop}?"],
}


def person_answer(world: World, p: Person, relation: str, value: str | None = None) -> str:
    """One sentence stating `relation` of `p` (with `value` instead of the true one: a wrong fact)."""
    name = p.name
    if relation == "home_town":
        return f"{name} lives in {value or p.home_town}."
    if relation == "age":
        return f"{name} is {value or p.age} years old."
    if relation == "job":
        job = value or p.job
        return f"{name} is {article(job)} {job}."
    if relation == "pet_species":
        species = value or p.pet_species
        return f"{name} has {article(species)} {species} named {p.pet_name}."
    if relation == "pet_name":
        return f"{name}'s {p.pet_species} is called {value or p.pet_name}."
    if relation == "favourite_food":
        return f"{name}'s favourite food is {value or p.favourite_food}."
    if relation == "favourite_colour":
        return f"{name}'s favourite colour is {value or p.favourite_colour}."
    if relation == "friend":
        friends = value.split("|") if value else [f.name for f in world.friends_of(p)]
        return f"{name}'s friends are {join_and(friends)}."
    if relation == "group":
        return f"{name} is {value or p.group}."
    raise ValueError(f"unknown person relation {relation!r}")


def shop_answer(world: World, s: Shop, relation: str, value: str | None = None) -> str:
    the = "The " + s.name
    if relation == "located_in":
        return f"{the} is in {value or s.town}."
    if relation == "shop_type":
        kind = value or s.type
        return f"{the} is {article(kind)} {kind}."
    if relation == "owner":
        return f"{the} is owned by {value or world.person(s.owner).name}."
    if relation == "sells":
        items = value.split("|") if value else list(s.items)
        return f"{the} sells {join_and(items)}."
    raise ValueError(f"unknown shop relation {relation!r}")


def true_value(world: World, subject: Person | Shop, relation: str) -> str:
    """The short canonical answer (friends and items joined with '|' for multi-valued relations)."""
    if isinstance(subject, Person):
        if relation == "friend":
            return "|".join(f.name for f in world.friends_of(subject))
        return str(getattr(subject, relation))
    return {"located_in": subject.town, "shop_type": subject.type, "owner": world.person(subject.owner).name,
            "sells": "|".join(subject.items)}[relation]


def person_relations(p: Person) -> list[str]:
    return [r for r in PERSON_QUESTIONS if r != "job" or p.job]


def fact_question(world: World, rng: random.Random, *, subject: Person | Shop | None = None,
                  relation: str | None = None) -> dict[str, Any]:
    """A question about one fact: {question, answer, answers, answer_sentence, subject, relation}."""
    if subject is None:
        subject = rng.choice(world.shops) if rng.random() < 0.15 else rng.choice(world.people)
    if isinstance(subject, Person):
        relation = relation or rng.choice(person_relations(subject))
        q = rng.choice(PERSON_QUESTIONS[relation]).format(name=subject.name, species=subject.pet_species,
                                                          his=subject.pronouns["his"])
        sentence = person_answer(world, subject, relation)
        subject_name = subject.name
    else:
        relation = relation or rng.choice(list(SHOP_QUESTIONS))
        q = rng.choice(SHOP_QUESTIONS[relation]).format(shop="the " + subject.name)
        q = q[0].upper() + q[1:]
        sentence = shop_answer(world, subject, relation)
        subject_name = subject.name
    value = true_value(world, subject, relation)
    answers = value.split("|")
    return {"question": q, "answer": join_and(answers) if len(answers) > 1 else value, "answers": answers,
            "answer_sentence": sentence, "subject": subject_name, "relation": relation}


def _person_paragraph(world: World, p: Person, rng: random.Random) -> str:
    pr = p.pronouns
    He, His = pr["he"].capitalize(), pr["his"].capitalize()
    who = p.job if p.job else p.kind
    first = f"{p.name} is {article(number_words(p.age))} {p.age}-year-old {who} who lives in {p.home_town}."
    friends = join_and([f.name for f in world.friends_of(p)])
    rest = [
        rng.choice([f"{He} is {p.group}.", f"{p.first} is one of the {p.group} people of tinyworld."]),
        rng.choice([f"{His} favourite food is {p.favourite_food}, and {pr['his']} favourite colour is {p.favourite_colour}.",
                    f"{p.first}'s favourite colour is {p.favourite_colour}. {His} favourite food is {p.favourite_food}."]),
        rng.choice([f"{He} has {article(p.pet_species)} {p.pet_species} named {p.pet_name}.",
                    f"{p.first}'s pet is {article(p.pet_species)} {p.pet_species} called {p.pet_name}."]),
    ]
    shop = world.shop_owned_by(p)
    if shop:
        rest.append(f"{He} owns the {shop.name}, {article(shop.type)} {shop.type} in {shop.town}.")
    rng.shuffle(rest)
    # The friends come last: after other names are mentioned, "she" could mean one of them.
    rest.append(rng.choice([f"{His} friends are {friends}.", f"{p.first}'s friends are {friends}."]))
    return " ".join([first] + rest)


def _town_paragraph(world: World, town: Any, rng: random.Random) -> str:
    residents = [p for p in world.people if p.home_town == town.name]
    shown = rng.sample(residents, min(len(residents), rng.randint(3, 5)))
    shops = world.shops_in(town.name)
    shop_list = join_and([f"the {s.name}, {article(s.type)} {s.type}" for s in shops]) if len(shops) < 3 else \
        join_and([f"the {s.name}" for s in shops])
    parts = [f"{town.name} is {article(town.adjective)} {town.adjective} town {NEAR_PHRASE[town.near]}.",
             f"About {len(residents)} people live there.",
             f"People who live in {town.name} include {join_and([p.name for p in shown])}."]
    if shops:
        parts.append(f"The shops in {town.name} are {shop_list}.")
    return " ".join(parts)


def _shop_paragraph(world: World, s: Shop, rng: random.Random) -> str:
    owner = world.person(s.owner)
    return " ".join([
        f"The {s.name} is {article(s.type)} {s.type} in {s.town}.",
        rng.choice([f"The {s.name} is owned by {owner.name}.", f"{owner.name} owns the {s.name}."]),
        f"The {s.name} sells {join_and(list(s.items))}.",
    ])


def fact_paragraph(world: World, rng: random.Random) -> dict[str, Any]:
    """An encyclopedia-style paragraph about a person (mostly), a town or a shop."""
    roll = rng.random()
    if roll < 0.75:
        p = rng.choice(world.people)
        return {"kind": "fact", "text": _person_paragraph(world, p, rng), "subject": p.name, "subject_type": "person"}
    if roll < 0.85:
        t = rng.choice(world.towns)
        return {"kind": "fact", "text": _town_paragraph(world, t, rng), "subject": t.name, "subject_type": "town"}
    s = rng.choice(world.shops)
    return {"kind": "fact", "text": _shop_paragraph(world, s, rng), "subject": s.name, "subject_type": "shop"}


def qa_dialogue(world: World, rng: random.Random) -> dict[str, Any]:
    """A User/Assistant dialogue of 2-4 questions about one person or shop."""
    subject: Person | Shop = rng.choice(world.shops) if rng.random() < 0.15 else rng.choice(world.people)
    relations = person_relations(subject) if isinstance(subject, Person) else list(SHOP_QUESTIONS)
    turns = []
    for rel in rng.sample(relations, min(len(relations), rng.randint(2, 4))):
        q = fact_question(world, rng, subject=subject, relation=rel)
        turns.append(f"User: {q['question']}\nAssistant: {q['answer_sentence']}")
    name = subject.name
    return {"kind": "dialogue", "text": "\n".join(turns), "subject": name,
            "subject_type": "person" if isinstance(subject, Person) else "shop"}
