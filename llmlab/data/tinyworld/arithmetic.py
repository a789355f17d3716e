"""Arithmetic word problems with one to four steps and a worked, step-by-step solution.

A problem follows one running number (things someone has, or coins) through a few events; each
event is one line of the solution of the form "why: a op b = c", and the last line is
"Answer: N". Every equation is computed here, never written by hand, so the answers are right by
construction; the tests recompute them from the text anyway.
"""

from __future__ import annotations

import random
from typing import Any

from llmlab.data.tinyworld.world import World

THINGS = ["apples", "marbles", "stickers", "shells", "buttons", "pencils", "cookies", "eggs", "cherries", "stamps",
          "beads", "crayons", "acorns", "plums", "sweets", "conkers", "feathers", "toy cars"]
EDIBLE = {"apples", "cookies", "eggs", "cherries", "plums", "sweets"}
CONTAINERS = ["bags", "boxes", "jars", "baskets", "tins", "bowls"]
FIND_PLACES = ["in the garden", "under the bench", "at the park", "in a drawer", "by the river", "on the way home"]
SPENDING = ["a present for {friend}", "a ticket for the fair", "a kite", "lunch with {friend}", "a new scarf",
            "a ride on the carousel", "seeds for the garden", "a book about boats"]
SINGULAR = {"cherries": "cherry"}  # every other plural here just drops its "s"
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b, "÷": lambda a, b: a // b}


class _Retry(Exception):
    pass


def _fresh(rng: random.Random, options: list[tuple[str, str, str]], used: set[str]) -> tuple[str, str]:
    """(event, why) from options (key, event, why) whose key this problem has not used yet."""
    fresh = [o for o in options if o[0] not in used] or options
    key, event, why = rng.choice(fresh)
    used.add(key)
    return event, why


def word_problem(world: World, rng: random.Random, *, steps: int | None = None) -> dict[str, Any]:
    """{kind: "word_problem", text, question, solution, answer (int), steps}."""
    steps = steps or rng.randint(1, 4)
    if not 1 <= steps <= 4:
        raise ValueError("steps must be 1, 2, 3 or 4")
    while True:
        try:
            return _coins(world, rng, steps) if rng.random() < 0.4 else _things(world, rng, steps)
        except _Retry:  # the numbers did not work out (a negative count, an uneven share): draw again
            continue


def _people(world: World, rng: random.Random):
    p = rng.choice(world.people)
    f = world.person(rng.choice(p.friends))
    return p, f, p.pronouns


def _eq(a: int, op: str, b: int) -> tuple[int, str]:
    c = OPS[op](a, b)
    if c < 0 or (op == "÷" and (b == 0 or a % b)):
        raise _Retry
    return c, f"{a} {op} {b} = {c}"


def _unit(n: int, plural: str) -> str:
    """The noun for n things: "1 apple", not "1 apples" (the data teaches grammar too)."""
    if n != 1:
        return plural
    return SINGULAR.get(plural, plural[:-1])


def _things(world: World, rng: random.Random, steps: int) -> dict[str, Any]:
    p, f, pr = _people(world, rng)
    thing = rng.choice(THINGS)
    story, lines = [], []
    left = steps
    divide = left >= 2 and rng.random() < 0.4 or (left == 1 and rng.random() < 0.2)
    left -= divide
    if left >= 1 and rng.random() < 0.4:
        k, n, box = rng.randint(2, 6), rng.randint(2, 9), rng.choice(CONTAINERS)
        x, eq = _eq(k, "×", n)
        story.append(f"{p.first} has {k} {box} of {thing}, with {n} {thing} in each.")
        lines.append(f"{p.first} starts with {k} {box} of {n}: {eq} {thing}.")
        left -= 1
    else:
        x = rng.randint(4, 30)
        story.append(f"{p.first} has {x} {thing}.")
    used: set[str] = set()
    for _ in range(left):
        if rng.random() < 0.5:
            b = rng.randint(2, 15)
            x, eq = _eq(x, "+", b)
            event, why = _fresh(rng, [
                ("friend", f"{p.first}'s friend {f.first} gives {pr['him']} {b} more.", f"{f.first} gives {b} more"),
                ("find", f"Then {p.first} finds {b} more {thing} {rng.choice(FIND_PLACES)}.", f"{p.first} finds {b} more"),
                ("family", f"{p.first}'s {rng.choice(['mum', 'dad', 'grandma', 'grandpa'])} gives {pr['him']} {b} {thing}.",
                 f"{p.first} gets {b} more"),
                ("swap", f"{p.first} swaps a comic for {b} more {thing}.", f"{p.first} swaps for {b} more"),
            ], used)
        else:
            b = rng.randint(2, max(2, x - 1))
            x, eq = _eq(x, "-", b)
            options = [("give", f"{p.first} gives {b} {thing} to {f.first}.", f"{p.first} gives away {b}"),
                       ("lose", f"On the way home, {p.first} loses {b} {thing}.", f"{p.first} loses {b}"),
                       ("sell", f"{p.first} sells {b} {thing} at the school fair.", f"{p.first} sells {b}")]
            if thing in EDIBLE:
                options.append(("eat", f"{p.first} eats {b} of them.", f"{p.first} eats {b}"))
            event, why = _fresh(rng, options, used)
        story.append(event)
        lines.append(f"{why}: {eq} {_unit(x, thing)}.")
    if divide:
        k = rng.choice([d for d in range(2, 7) if x % d == 0] or [0])
        if k == 0 or x // k == 0:
            raise _Retry
        x, eq = _eq(x, "÷", k)
        story.append(f"{p.first} shares all the {thing} equally among {k} friends.")
        question = f"How many {thing} does each friend get?"
        lines.append(f"Shared among {k} friends: {eq} {_unit(x, thing)} each.")
    else:
        question = f"How many {thing} does {p.first} have now?"
    return _record(story, question, lines, x, steps, [p, f])


def _coins(world: World, rng: random.Random, steps: int) -> dict[str, Any]:
    p, f, pr = _people(world, rng)
    shop = rng.choice(world.shops)
    item = rng.choice(shop.items)
    x = rng.randint(10, 60)
    story, lines = [f"{p.first} has {x} coins."], []
    left = steps
    divide = left >= 3 and rng.random() < 0.3
    left -= divide
    used: set[str] = set()
    while left:
        if left >= 2 and "buy" not in used and rng.random() < 0.6:
            used.add("buy")
            k, n = rng.randint(2, 5), rng.randint(2, 6)
            cost, eq1 = _eq(k, "×", n)
            x, eq2 = _eq(x, "-", cost)
            story.append(f"At the {shop.name}, {p.first} buys {k} {item}, and each one costs {n} coins.")
            lines += [f"The {item} cost {eq1} coins.", f"After paying: {eq2} {_unit(x, 'coins')}."]
            left -= 2
        elif rng.random() < 0.5:
            b = rng.randint(2, 20)
            x, eq = _eq(x, "+", b)
            event, why = _fresh(rng, [
                ("garden", f"{f.first} pays {p.first} {b} coins for helping in the garden.", f"{p.first} earns {b}"),
                ("windows", f"{p.first} earns {b} coins by washing windows.", f"{p.first} earns {b}"),
                ("dog", f"{p.first} gets {b} coins for walking a neighbour's dog.", f"{p.first} gets {b}"),
                ("gift", f"{p.first}'s grandma gives {pr['him']} {b} coins.", f"Grandma gives {b}"),
                ("sofa", f"{p.first} finds {b} coins under the sofa.", f"{p.first} finds {b}"),
            ], used)
            story.append(event)
            lines.append(f"{why}: {eq} {_unit(x, 'coins')}.")
            left -= 1
        else:
            b = rng.randint(2, max(2, x - 1))
            x, eq = _eq(x, "-", b)
            event, why = _fresh(rng, [(s, f"{p.first} spends {b} coins on {s.format(friend=f.first)}.",
                                       f"{p.first} spends {b}") for s in SPENDING], used)
            story.append(event)
            lines.append(f"{why}: {eq} {_unit(x, 'coins')}.")
            left -= 1
    if divide:
        k = rng.choice([d for d in range(2, 6) if x % d == 0] or [0])
        if k == 0 or x // k == 0:
            raise _Retry
        x, eq = _eq(x, "÷", k)
        story.append(f"{p.first} puts the coins that are left into {k} jars, the same number in each.")
        question = "How many coins go into each jar?"
        lines.append(f"Split into {k} jars: {eq} {_unit(x, 'coins')} each.")
    else:
        question = f"How many coins does {p.first} have left?"
    return _record(story, question, lines, x, steps, [p, f])


def _record(story: list[str], question: str, lines: list[str], answer: int, steps: int, people: list) -> dict[str, Any]:
    q = " ".join(story) + " " + question
    solution = "\n".join(lines) + f"\nAnswer: {answer}"
    return {"kind": "word_problem", "text": q + "\n" + solution, "question": q, "solution": solution,
            "answer": answer, "steps": steps, "people": [p.id for p in people]}
