"""Reviews of the world's shops and their food, each labelled positive or negative.

A review is a visit, two to four remarks (the thing bought, the shopkeeper, the price, the shop,
the wait) and a verdict. About a third of reviews mix in one remark of the other polarity, so a
classifier has to weigh the whole text rather than spot a single word. Shop names, towns and the
shopkeeper's job come from the world.
"""

from __future__ import annotations

import random
from typing import Any

from llmlab.data.tinyworld import lexicon as L
from llmlab.data.tinyworld.grammar import render
from llmlab.data.tinyworld.world import World

OPENINGS = [
    "I went to {shop} in {town} last {~weekday} to buy some {item}.",
    "Last {~weekday}, my {relative} and I visited {shop}, the {shop_type} in {town}.",
    "We stopped at {shop} in {town} on a {~weather} {~day_part} for some {item}.",
    "I have been to {shop} in {town} {two|three|four|five} times now, and this time I bought {item}.",
    "On a {~weather} {~weekday}, I walked to {shop} in {town} because I wanted {item}.",
]
REMARKS = {
    "positive": [
        "The {item} were {good_item} and {good_item2}.",
        "{O}, the {o_job}, was {good_staff} and {smiled at us|knew exactly what we wanted|gave us a little extra}.",
        "Everything cost only {coins} coins, which is a {fair|good|very fair} price.",
        "The shop was {clean and bright|warm and cosy|neat and tidy}, with {~colour} flowers by the door.",
        "I did not have to wait at all, even though it was a busy {~day_part}.",
        "My {relative} said the {item} were the best {he_she} had ever had.",
    ],
    "negative": [
        "The {item} were {bad_item} and {bad_item2}.",
        "{O}, the {o_job}, was {bad_staff} and {did not even say hello|sighed at every question|got our order wrong}.",
        "Everything cost {coins} coins, which is {far too much|much too expensive|a waste of money}.",
        "The shop was {dirty and dark|cold and gloomy|messy and crowded}, and the floor was sticky.",
        "We waited {ten|fifteen|twenty|thirty} minutes before anyone came to help us.",
        "My {relative} said the {item} were the worst {he_she} had ever had.",
    ],
}
VERDICTS = {
    "positive": ["I will {definitely|happily|soon} come back to {shop}!", "{stars_text} from me.",
                 "I would tell all my friends in {town} to go there.", "What a {lovely|wonderful|happy} visit!",
                 "{shop} is now my favourite {shop_type} in {town}."],
    "negative": ["I will not go back to {shop}.", "{stars_text} from me.",
                 "I would tell my friends in {town} to stay away.", "What a {disappointing|horrible|sad} visit.",
                 "{shop} is the worst {shop_type} in {town}."],
}
BUT = {"positive": "The only {problem|bad thing} was that ", "negative": "To be fair, "}

FOOD_GOOD = ["fresh", "delicious", "tasty", "warm", "soft", "sweet", "perfect", "lovely"]
FOOD_BAD = ["stale", "cold", "burnt", "dry", "soggy", "bland", "hard", "old"]
THING_GOOD = ["beautiful", "well made", "bright", "lovely", "sturdy", "perfect", "pretty"]
THING_BAD = ["broken", "cheap", "faded", "torn", "flimsy", "dull", "ugly"]
STAFF_GOOD = ["friendly", "kind", "helpful", "cheerful", "patient", "polite"]
STAFF_BAD = ["rude", "grumpy", "slow", "unfriendly", "careless", "impatient"]


def make_review(world: World, rng: random.Random, *, label: str | None = None, shop: Any = None) -> dict[str, Any]:
    """{kind: "review", text, label, stars, shop, town, mixed}."""
    label = label or rng.choice(("positive", "negative"))
    if label not in ("positive", "negative"):
        raise ValueError("label must be 'positive' or 'negative'")
    shop = shop or rng.choice(world.shops)
    owner = world.person(shop.owner)
    food = shop.type in L.FOOD_SHOP_TYPES
    good, bad = (FOOD_GOOD, FOOD_BAD) if food else (THING_GOOD, THING_BAD)
    other = "negative" if label == "positive" else "positive"
    g1, g2 = rng.sample(good, 2)
    b1, b2 = rng.sample(bad, 2)
    ctx = {
        "shop": "the " + shop.name, "town": shop.town, "shop_type": shop.type, "item": rng.choice(shop.items),
        "O": owner.first, "o_job": owner.job, "relative": ["mum", "dad", "grandma", "grandpa", "sister", "brother", "aunt", "uncle"],
        "coins": str(rng.randint(2, 30)), "good_item": g1, "good_item2": g2, "bad_item": b1, "bad_item2": b2,
        "good_staff": STAFF_GOOD, "bad_staff": STAFF_BAD,
    }
    rel = rng.choice(ctx["relative"])
    ctx["relative"] = rel
    ctx["he_she"] = "she" if rel in ("mum", "grandma", "sister", "aunt") else "he"
    # REMARKS[positive][i] and REMARKS[negative][i] are about the same thing, so a twist never
    # contradicts a remark already made ("the staff were kind ... the staff were rude").
    aspects = rng.sample(range(len(REMARKS[label])), 4)
    remarks = [REMARKS[label][i] for i in aspects[:rng.randint(2, 3)]]
    sentences = [render(rng.choice(OPENINGS), ctx, rng)] + [render(t, ctx, rng) for t in remarks]
    stars = rng.choice((4, 5)) if label == "positive" else rng.choice((1, 2))
    ctx["stars_text"] = ["One star", "Two stars", "", "Four stars", "Five stars"][stars - 1]
    mixed = rng.random() < 0.3
    if mixed:  # one remark of the other polarity, introduced as an exception
        twist = render(REMARKS[other][aspects[3]], ctx, rng)
        if not twist.startswith((ctx["O"], "I ")):
            twist = twist[0].lower() + twist[1:]
        sentences.insert(rng.randint(2, len(sentences)), render(BUT[label], ctx, rng) + twist)
    sentences.append(render(rng.choice(VERDICTS[label]), ctx, rng))
    return {"kind": "review", "text": " ".join(sentences), "label": label, "stars": stars,
            "shop": shop.name, "town": shop.town, "mixed": mixed}
