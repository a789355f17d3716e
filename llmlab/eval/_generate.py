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


# ----------------------------------------------------------------------------------------------
# Batched generation through the engine (many prompts at once, one seed per request)
# ----------------------------------------------------------------------------------------------

PROMPT_FORMATS = ("chat", "dialogue", "none")


def prompt_formatter(model: Any, tokenizer: Any, prompt_format: str = "chat", system_prompt: str = ""
                     ) -> Callable[[str], tuple[str | list[int], list[str]]]:
    """A function message -> (prompt, extra stop strings).

    chat: the tokenizer's chat template, exactly as `llmlab.infer.LLMChatbot` renders a first turn
        (the lesson's "Human: ... Assistant:" when the tokenizer has no template);
    dialogue: "User: ...\\nAssistant:", the form tinyworld's pre-training text uses;
    none: the message as it is.
    """
    if prompt_format == "chat":
        from llmlab.infer import LLMChatbot

        bot = LLMChatbot(model, tokenizer, system_prompt)
        stops = [] if bot.use_template else ["\nHuman:"]
        return lambda message: (bot.render([], message), stops)
    if prompt_format == "dialogue":
        return lambda message: (f"User: {message}\nAssistant:", ["\nUser:"])
    if prompt_format == "none":
        return lambda message: (message, [])
    raise LLMLabError(f"unknown prompt format {prompt_format!r}; choose from {', '.join(PROMPT_FORMATS)}")


def batch_generate(model: Any, tokenizer: Any, prompts: list[str], *, seeds: list[int | None] | None = None,
                   prompt_format: str = "none", system_prompt: str = "", generate_fn: GenerateFn | None = None,
                   max_batch_size: int = 64, **gen_kwargs: Any) -> list[str]:
    """One continuation per prompt, in order, batched through `llmlab.infer.Engine` (one request per
    prompt, each with its own seed, so repeated prompts give independent samples).

    With `generate_fn`, prompts are generated one at a time through it instead (tests, other
    generators); then `prompt_format` must be "none".
    """
    if seeds is not None and len(seeds) != len(prompts):
        raise LLMLabError(f"{len(seeds)} seeds for {len(prompts)} prompts")
    if generate_fn is not None:
        if prompt_format != "none":
            raise LLMLabError("a custom generate_fn receives raw prompts; use prompt_format='none'")
        out = []
        for i, p in enumerate(prompts):
            kwargs = dict(gen_kwargs)
            if seeds is not None and seeds[i] is not None:
                kwargs["seed"] = seeds[i]
            out.append(generate_all(generate_fn, model, tokenizer, [p], **kwargs)[0])
        return out
    from llmlab.infer import Engine

    if not prompts:
        return []
    import warnings

    engine = Engine(model, tokenizer, max_batch_size=max(1, min(max_batch_size, len(prompts))))
    stop = list(gen_kwargs.pop("stop", None) or [])
    # Evaluation prompts (few-shot contexts, long templates) may not fit a small model's context:
    # keep their end, and never ask for more new tokens than half the context.
    gen_kwargs.setdefault("truncation", "left")
    half = model.config.context_length // 2
    if (gen_kwargs.get("max_new_tokens") or 0) > half:
        gen_kwargs["max_new_tokens"] = half
    fmt = prompt_formatter(model, tokenizer, prompt_format, system_prompt)
    ids = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="prompt of .* truncated")  # counted below instead
        for i, p in enumerate(prompts):
            prompt, extra_stop = fmt(p)
            seed = seeds[i] if seeds is not None else gen_kwargs.get("seed")
            kwargs = {**gen_kwargs, "seed": seed, "stop": stop + extra_stop}
            ids.append(engine.add_request(prompt, request_id=f"eval-{i}", **kwargs))
    done = engine.wait(set(ids))
    truncated = sum(bool(done[i].prompt_truncated) for i in ids)
    if truncated:
        warnings.warn(f"{truncated} of {len(ids)} prompts were cut from the left to fit the context of "
                      f"{model.config.context_length} tokens", stacklevel=2)
    texts = [done[i].text for i in ids]
    return [t.strip() for t in texts] if prompt_format != "none" else texts
