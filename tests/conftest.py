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
