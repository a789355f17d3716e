"""The one seam between evaluation and text generation.

Evaluation never samples tokens itself (DESIGN: `infer/` is the only place that does). Every
evaluator that generates takes an optional `generate_fn(model, tokenizer, prompt, **kwargs) -> str`
returning the continuation; when it is None, `llmlab.infer.generate_text` is imported here, at
call time, so importing `llmlab.eval` never imports the engine (or torch).
"""

from __future__ import annotations

from typing import Any, Callable

from llmlab.errors import LLMLabError

GenerateFn = Callable[..., str]


def resolve_generate_fn(generate_fn: GenerateFn | None = None) -> GenerateFn:
    if generate_fn is not None:
        if not callable(generate_fn):
            raise LLMLabError(f"generate_fn must be callable, got {type(generate_fn).__name__}")
        return generate_fn
    try:
        from llmlab.infer import generate_text
    except ImportError as exc:
        # Only "the engine does not provide it (yet)" becomes a user-facing error; a broken
        # import inside the engine is a bug and keeps its traceback.
        if "generate_text" not in str(exc) and getattr(exc, "name", None) not in ("llmlab.infer",):
            raise
        raise LLMLabError(
            "llmlab.infer.generate_text is not available; pass generate_fn=... to evaluate "
            "with another generator"
        ) from exc
    return generate_text


def generate_all(generate_fn: GenerateFn, model: Any, tokenizer: Any, prompts: list[str], **kwargs: Any) -> list[str]:
    """Generate one continuation per prompt; a non-string result is a bug in the generator."""
    outputs = []
    for prompt in prompts:
        text = generate_fn(model, tokenizer, prompt, **kwargs)
        if not isinstance(text, str):
            raise LLMLabError(f"generate_fn returned {type(text).__name__}, expected str")
        outputs.append(text)
    return outputs
