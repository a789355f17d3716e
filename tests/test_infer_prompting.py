"""Prompt builders, answer and code extraction (no model needed)."""

from __future__ import annotations

import pytest

from llmlab.errors import ConfigError, DataError
from llmlab.infer import (
    chain_of_thought_prompt,
    extract_answer,
    extract_code,
    few_shot_classification,
    few_shot_prompt,
    zero_shot_prompt,
)


def test_few_shot_prompt_is_the_lessons_format():
    examples = [{"text": "Great soup!", "label": "positive"}, ("Cold tea.", "negative")]
    assert few_shot_prompt(examples, "Nice cake.") == (
        "Classify the sentiment of these texts:\n\n"
        "Text: Great soup!\nSentiment: positive\n\n"
        "Text: Cold tea.\nSentiment: negative\n\n"
        "Text: Nice cake.\nSentiment:"
    )
    assert zero_shot_prompt("Nice cake.") == "Classify the sentiment of these texts:\n\nText: Nice cake.\nSentiment:"
    with pytest.raises(DataError, match="example 0"):
        few_shot_prompt([{"txt": "x"}], "y")


def test_chain_of_thought_prompt():
    assert chain_of_thought_prompt("What is 2 + 3?") == (
        "Problem: What is 2 + 3?\n\nLet me think step by step:\n\nStep 1:"
    )
    demo = {"question": "Sam has 2 apples and gets 1.", "solution": "2 + 1 = 3 apples.\nAnswer: 3"}
    prompt = chain_of_thought_prompt("What is 2 + 3?", [demo])
    # Demonstrations without "Step 1:" labels: the query does not start one either.
    assert prompt.startswith("Problem: Sam has 2 apples") and prompt.endswith("Let me think step by step:")
    with pytest.raises(DataError, match="question"):
        chain_of_thought_prompt("x", [{"q": 1}])


@pytest.mark.parametrize("text, answer", [
    ("Bram starts with 4 x 6 = 24.\nBram eats 10: 24 - 10 = 14 cherries.\nAnswer: 14", "14"),
    ("so the answer is 1,024.", "1024"),
    ("Answer: -3.50", "-3.5"),
    ("3 + 4 = 7", "7"),  # no "Answer:": the last number
    ("Step 1: I am not sure. Step 2:", None),  # step labels are not answers
    ("no numbers here", None),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_extract_code():
    assert extract_code("def add(a, b):\n    return a + b\n```\nMore text") == "def add(a, b):\n    return a + b"
    assert extract_code("```python\nprint(1)\n```\nbye") == "print(1)"
    assert extract_code("x = 1\n") == "x = 1"


def test_classification_needs_labels(tiny_model, small_tokenizer):
    with pytest.raises(ConfigError, match="no labels"):
        few_shot_classification(tiny_model, small_tokenizer, [], "text")
    with pytest.raises(ConfigError, match="distinct"):
        few_shot_classification(tiny_model, small_tokenizer, [], "text", labels=["a", "a"])
