"""`ContentGenerator`: the lesson's article and code writers, on the engine.

Lengths are budgets in tokens (the lesson asked for words in the prompt, which a model may or may
not honour; the token budget is what actually bounds the output). Code generation opens a fenced
block in the prompt and stops at the closing fence, so the code is exactly what lies between.
"""

from __future__ import annotations

import re
from typing import Any

from llmlab.errors import ConfigError
from llmlab.infer.engine import Engine, GenerationResult
from llmlab.infer.params import checkpoint_defaults

# words asked for in the prompt, tokens allowed (about 1.3 tokens per English word, rounded up)
LENGTHS = {
    "short": ("a brief 200-word", 280),
    "medium": ("a comprehensive 500-word", 680),
    "long": ("a detailed 1000-word", 1350),
}
_FENCE_RE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(text: str) -> str:
    """The code in a continuation of a prompt that opened a fenced block: the text up to the
    closing fence; if the model opened a fresh block itself, that block's body."""
    stripped = text.lstrip()
    if stripped.startswith("```"):
        match = _FENCE_RE.match(stripped)
        return match.group(1).strip() if match else ""
    return text.split("```")[0].strip()


class ContentGenerator:
    def __init__(self, model, tokenizer, *, temperature: float | None = None, engine: Engine | None = None,
                 **generation: Any):
        """temperature defaults to the checkpoint's, else 0.7 (the lesson's); other keywords are
        GenerationConfig fields."""
        self.model = model
        self.tokenizer = tokenizer
        self.engine = engine or Engine(model, tokenizer, max_batch_size=1)
        if temperature is None:
            temperature = checkpoint_defaults(model).get("temperature", 0.7)
        self.config = self.engine.make_config(temperature=temperature, **generation)
        self.last_result: GenerationResult | None = None

    def generate_article(self, topic: str, style: str = "informative", length: str | int = "medium") -> str:
        """An article about `topic`. length: "short", "medium", "long", or a token budget. Generation
        stops at the budget or at the end of the context, whichever comes first."""
        if isinstance(length, str):
            if length not in LENGTHS:
                raise ConfigError(f"length must be one of {sorted(LENGTHS)} or a number of tokens, got {length!r}")
            words, budget = LENGTHS[length]
            ask = f"Write {words} article"
        elif isinstance(length, int) and not isinstance(length, bool) and length > 0:
            budget, ask = length, "Write an article"
        else:
            raise ConfigError(f"length must be one of {sorted(LENGTHS)} or a positive number of tokens, got {length!r}")
        article = "an" if style[:1].lower() in "aeiou" else "a"
        prompt = f"{ask} about {topic} in {article} {style} style.\n\nTitle: {topic.title()}\n\n"
        self.last_result = self.engine.generate(prompt, self.config, max_new_tokens=budget)
        return self.last_result.text.strip()

    def generate_code(self, description: str, language: str = "Python") -> str:
        """Code that does `description`, taken from the fenced block the prompt opens."""
        prompt = f"Write {language} code to {description}:\n\n```{language.lower()}\n"
        config = self.config.replace(stop=list(self.config.stop) + ["```"])
        if config.max_new_tokens is None and config.max_length is None:
            config = config.replace(max_new_tokens=300)
        self.last_result = self.engine.generate(prompt, config)
        return extract_code(self.last_result.text)
