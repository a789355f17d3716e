"""tinyworld: a seeded, deterministic little world and many kinds of text about it.

    from llmlab.data.tinyworld import World, generate_dataset
    world = World(seed=0)                       # people, towns, shops, groups, knowledge base
    stories = world.stories(3, random.Random(1))  # in-memory generators take an explicit rng
    manifest = generate_dataset("data/tinyworld", tokens="2M", seed=0)

See docs/tinyworld.md for every file, field and knob.
"""

from llmlab.data.tinyworld.parse import Claim, check_text, wrong_claims
from llmlab.data.tinyworld.tokens import count_tokens, parse_token_count
from llmlab.data.tinyworld.world import Person, Shop, Town, World
from llmlab.data.tinyworld.writer import DEFAULT_TOKENS, VERSION, generate_dataset, read_manifest

__all__ = [
    "World", "Person", "Town", "Shop", "generate_dataset", "read_manifest", "count_tokens", "parse_token_count",
    "check_text", "wrong_claims", "Claim", "VERSION", "DEFAULT_TOKENS",
]
