"""Shared fixtures: a small tokenizer and model that every test can build in well under a second."""

from __future__ import annotations

import os

import pytest

# Two pytest-xdist workers share two cores: one intra-op thread each avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")

SAMPLE_TEXT = [
    "Once upon a time, Mia had a small dog named Rex. Rex liked to run in the park.",
    "Tom lives in Pinebrook. He works as a baker and his favourite food is soup.",
    "User: What is the name of Mia's dog?\nAssistant: Mia's dog is called Rex.",
    "Sam has 3 apples. He buys 4 more. 3 + 4 = 7. Answer: 7",
    "The shop was clean and the bread was fresh. I liked it a lot!",
    "Zoë ate crème brûlée in Köln; 東京 is far away 🙂.",
] * 20


@pytest.fixture(scope="session")
def torch_threads():
    import torch

    torch.set_num_threads(1)
    return 1


@pytest.fixture(scope="session")
def small_tokenizer():
    from llmlab.tokenizer import Tokenizer

    return Tokenizer.train(SAMPLE_TEXT, vocab_size=512, show_progress=False)


@pytest.fixture
def tiny_model(small_tokenizer, torch_threads):
    """A randomly initialised `tiny` llama-style model over the small tokenizer's vocabulary."""
    import torch

    from llmlab.config import preset
    from llmlab.model import TransformerLM

    torch.manual_seed(0)
    return TransformerLM(preset("tiny", vocab_size=small_tokenizer.vocab_size)).eval()


# ---- fine-tuning and alignment (tests/test_sft.py, test_lora.py, test_reward.py, test_dpo.py, test_ppo.py)
FINETUNE_MODEL = dict(n_layer=2, d_model=64, n_head=4, n_kv_head=2, context_length=96)


@pytest.fixture(scope="session")
def finetune_checkpoint(tmp_path_factory, small_tokenizer):
    """A saved checkpoint directory of a small random llama-style model with the small tokenizer."""
    import torch

    from llmlab.checkpoint import save_checkpoint
    from llmlab.config import preset
    from llmlab.model import TransformerLM

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = TransformerLM(preset("tiny", vocab_size=small_tokenizer.vocab_size, **FINETUNE_MODEL))
    return save_checkpoint(tmp_path_factory.mktemp("finetune") / "base", model, small_tokenizer)


# ---------------------------------------------------------------------------- evaluation (appended)
FACT_RELATIONS = ("home_town", "pet_species", "favourite_food")


@pytest.fixture(scope="session")
def fact_model(tmp_path_factory):
    """A tiny model trained for a few seconds to know 24 facts of tinyworld World(seed=0): 8 adults x
    (home town, pet, favourite food), as statements and as "User: ... Assistant: ..." answers.

    Returns a dict: model, tokenizer, world, people, claims (true and false, with subject/relation/
    object), unknown (names of people who do not exist), ckpt (a saved checkpoint directory).
    """
    import random

    import torch
    from helpers import train_small_lm

    import llmlab
    from llmlab.data.tinyworld import World
    from llmlab.data.tinyworld.facts import PERSON_QUESTIONS, person_answer
    from llmlab.data.tinyworld.preferences import wrong_value
    from llmlab.tokenizer import Tokenizer

    torch.set_num_threads(1)
    world = World(seed=0)
    people = [p for p in world.people if not p.is_child][:8]
    rng = random.Random(0)
    docs = []
    for _ in range(20):
        for p in people:
            for r in FACT_RELATIONS:
                docs.append(person_answer(world, p, r))
                q = rng.choice(PERSON_QUESTIONS[r]).format(name=p.name)
                docs.append(f"User: {q}\nAssistant: {person_answer(world, p, r)}")
    tok = Tokenizer.train(docs, vocab_size=600, show_progress=False)  # whole words: short sequences, fast
    model = train_small_lm(tok, docs, context=48, seq_len=48, lr=5e-3)
    claims = []
    for p in people:
        for r in FACT_RELATIONS:
            truth = str(getattr(p, r))
            wrong = wrong_value(world, p, r, random.Random(p.id + r))
            claims.append({"claim": person_answer(world, p, r), "label": True, "subject": p.name, "relation": r,
                           "object": truth})
            claims.append({"claim": person_answer(world, p, r, wrong), "label": False, "subject": p.name,
                           "relation": r, "object": wrong})
    ckpt = tmp_path_factory.mktemp("fact_model") / "ckpt"
    llmlab.save_checkpoint(ckpt, model, tok)
    return {"model": model, "tokenizer": tok, "world": world, "people": people, "claims": claims,
            "unknown": world.unknown_names("probe")[:8], "ckpt": ckpt}


# ---------------------------------------------------------------------------- serving (tests/test_serve_*.py)
@pytest.fixture(scope="session")
def serve_checkpoint(tmp_path_factory, small_tokenizer):
    """A saved random 2-layer llama-style model with the small tokenizer (ChatML template) and a
    1024-token context, so a stream can run long enough to be interrupted."""
    import torch

    from llmlab.checkpoint import save_checkpoint
    from llmlab.config import preset
    from llmlab.model import TransformerLM

    torch.manual_seed(0)
    model = TransformerLM(preset("tiny", vocab_size=small_tokenizer.vocab_size, n_layer=2, d_model=64, n_head=4,
                                 n_kv_head=2, context_length=1024))
    return save_checkpoint(tmp_path_factory.mktemp("serve") / "model", model, small_tokenizer)
