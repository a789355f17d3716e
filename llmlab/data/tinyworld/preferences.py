"""Preference pairs for reward modelling and DPO: `prompt`, `chosen`, `rejected` and a `reason`.

Reasons (each pair differs in exactly this way):
- wrong_fact          chosen states the world's fact; rejected is the same sentence with a wrong object.
- opposite_ending     the prompt asks for a happy (or sad) story; rejected is the same story with the
                      other ending (identical up to the ending).
- harmful_compliance  the prompt is harmful; chosen refuses politely, rejected complies.
- over_refusal        the prompt only looks harmful; chosen helps, rejected refuses.
- off_topic           chosen answers the question; rejected is a true statement about someone or
                      something else.
"""

from __future__ import annotations

import random
from typing import Any

from llmlab.data.tinyworld import lexicon as L
from llmlab.data.tinyworld.facts import fact_question, person_answer, shop_answer, true_value
from llmlab.data.tinyworld.instruct import SYSTEM_PROMPT, story_request
from llmlab.data.tinyworld.world import Person, World

REASON_WEIGHTS = {"wrong_fact": 0.3, "opposite_ending": 0.2, "harmful_compliance": 0.15, "over_refusal": 0.15,
                  "off_topic": 0.2}


def wrong_value(world: World, subject: Any, relation: str, rng: random.Random) -> str:
    """A plausible value for `relation` that is false for `subject` (same kind of thing)."""
    truth = true_value(world, subject, relation)
    if relation in ("friend", "sells"):  # swap one member of the list for an outsider
        members = truth.split("|")
        if relation == "friend":
            outsiders = [p.name for p in world.people if p.name not in members and p.id != subject.id]
        else:
            outsiders = [i for i in L.SHOP_TYPES[subject.type][1] + L.SHOP_TYPES["bakery"][1] if i not in members]
        members[rng.randrange(len(members))] = rng.choice(outsiders)
        return "|".join(members)
    if relation == "age":
        return str(max(4, int(truth) + rng.choice([-7, -5, -3, -2, 2, 3, 5, 8])))
    pools = {"home_town": [t.name for t in world.towns], "located_in": [t.name for t in world.towns],
             "job": L.JOBS, "pet_species": list(L.PET_SPECIES), "pet_name": L.PET_NAMES, "favourite_food": L.FOODS,
             "favourite_colour": L.COLOURS, "group": L.GROUPS, "shop_type": list(L.SHOP_TYPES),
             "owner": [p.name for p in world.people if not p.is_child]}
    return rng.choice([v for v in pools[relation] if v != truth])


def _pair(prompt: str, chosen: str, rejected: str, reason: str, task: str, **labels: Any) -> dict[str, Any]:
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "reason": reason, "task": task,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}], **labels}


def preference_pair(world: World, rng: random.Random, reason: str | None = None) -> dict[str, Any]:
    reason = reason or rng.choices(list(REASON_WEIGHTS), weights=list(REASON_WEIGHTS.values()))[0]
    if reason == "wrong_fact":
        q = fact_question(world, rng)
        subject = world.person(q["subject"]) if world.has_person(q["subject"]) else world.shop(q["subject"])
        wrong = wrong_value(world, subject, q["relation"], rng)
        answer = person_answer if isinstance(subject, Person) else shop_answer
        return _pair(q["question"], q["answer_sentence"], answer(world, subject, q["relation"], wrong), reason, "fact_qa",
                     subject=q["subject"], relation=q["relation"], wrong_value=wrong)
    if reason == "opposite_ending":
        ending = rng.choice(("happy", "sad"))
        request, story = story_request(world, rng, ending)
        other = "sad" if ending == "happy" else "happy"
        return _pair(request, story["endings"][ending], story["endings"][other], reason, "story",
                     ending=ending, protagonist=story["protagonist"], group=story["group"])
    if reason in ("harmful_compliance", "over_refusal"):
        req = world.requests(1, rng)[0]
        if reason == "harmful_compliance":
            return _pair(req["harmful_prompt"], req["refusal"], req["compliance"], reason, "refuse_harmful",
                         category=req["category"], harmful=True)
        return _pair(req["lookalike_prompt"], req["help"], req["over_refusal"], reason, "help_lookalike",
                     category=req["category"], harmful=False)
    if reason == "off_topic":
        q = fact_question(world, rng)
        while True:  # a true answer to a different question about a different subject
            other = fact_question(world, rng)
            if other["subject"] != q["subject"]:
                break
        return _pair(q["question"], q["answer_sentence"], other["answer_sentence"], reason, "fact_qa",
                     subject=q["subject"], relation=q["relation"], rejected_subject=other["subject"])
    raise ValueError(f"unknown preference reason {reason!r}; known: {', '.join(REASON_WEIGHTS)}")
