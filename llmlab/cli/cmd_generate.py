"""`llmlab generate`: continue one prompt or a file of prompts with a checkpoint.

Also home of the sampling flags that `llmlab chat` shares (`sampling_options`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click

from llmlab.cli.common import device_option, emit_json, json_option, load_checkpoint, model_option, quantize_option
from llmlab.errors import DataError, at_line, json_error

# flag -> (GenerationConfig field, click type, help); every flag defaults to None, so only flags the
# user gives override the checkpoint's generation_config.json and the library defaults.
SAMPLING_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--max-new-tokens", "max_new_tokens", int, "Tokens to generate (default: generate 100, chat 256)."),
    ("--max-length", "max_length", int, "Prompt + generated tokens (Hugging Face meaning); instead of --max-new-tokens."),
    ("--min-new-tokens", "min_new_tokens", int, "Suppress stop tokens until this many tokens exist."),
    ("--temperature", "temperature", float, "0 = greedy; higher = more random (default: generate 1.0, chat 0.7)."),
    ("--top-k", "top_k", int, "Sample among the k most likely tokens (0 = off)."),
    ("--top-p", "top_p", float, "Nucleus sampling: the smallest set with this much probability (1 = off)."),
    ("--min-p", "min_p", float, "Drop tokens below min_p x the top token's probability (0 = off)."),
    ("--repetition-penalty", "repetition_penalty", float, "> 1 discourages tokens already in prompt or output."),
    ("--frequency-penalty", "frequency_penalty", float, "OpenAI-style, -2..2: penalise by count in the output."),
    ("--presence-penalty", "presence_penalty", float, "OpenAI-style, -2..2: penalise tokens present in the output."),
    ("--seed", "seed", int, "Sampling seed: the same seed gives the same text."),
    ("--truncation", "truncation", click.Choice(["error", "left"]),
     "A prompt too long for the context: reject it (error, default) or drop its oldest tokens (left)."),
]


def sampling_options(func: Callable) -> Callable:
    """Decorate a command with the sampling flags (they arrive as keyword arguments)."""
    func = click.option("--top-logprobs", "top_logprobs", type=int, default=None,
                        help="With --json: also the N most likely alternatives per token.")(func)
    func = click.option("--logprobs", "logprobs", is_flag=True, default=None,
                        help="With --json: each generated token's log-probability.")(func)
    func = click.option("--ignore-eos", "ignore_eos", is_flag=True, default=None,
                        help="Do not stop at end-of-text / end-of-turn tokens.")(func)
    func = click.option("--stop-token-id", "stop_token_ids", type=int, multiple=True,
                        help="A token id that ends generation (repeatable).")(func)
    func = click.option("--stop", "stop", multiple=True,
                        help="A string that ends the text, excluded from it (repeatable).")(func)
    for flag, name, kind, help_text in reversed(SAMPLING_FLAGS):
        func = click.option(flag, name, type=kind, default=None, help=help_text)(func)
    return func


def generation_overrides(options: dict[str, Any]) -> dict[str, Any]:
    """The GenerationConfig fields the user set on the command line."""
    names = [name for _, name, _, _ in SAMPLING_FLAGS] + ["ignore_eos", "logprobs", "top_logprobs"]
    out = {k: options[k] for k in names if options.get(k) is not None}
    for k in ("stop", "stop_token_ids"):
        if options.get(k):
            out[k] = list(options[k])
    return out


dtype_option = click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default=None,
                            help="Compute precision (default: as stored).")


def read_prompts(path: str) -> list[str]:
    """One prompt per line, or JSON lines with a "prompt" (or "text") field; "-" reads stdin."""
    text = sys.stdin.read() if path == "-" else _read(path)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"no prompts in {path}")
    if path.endswith(".jsonl") or lines[0].lstrip().startswith("{"):
        prompts = []
        for i, line in enumerate(text.splitlines(), 1):  # i: the line in the file, blank ones counted
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(json_error(path, exc, i)) from None
            value = record.get("prompt", record.get("text")) if isinstance(record, dict) else None
            if not isinstance(value, str):
                raise DataError(f"{at_line(path, i)}: needs a string field \"prompt\"")
            prompts.append(value)
        return prompts
    return lines


def _read(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"prompts file not found: {path}")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text") from None


@click.command("generate")
@model_option
@click.option("--prompt", default=None, help="The text to continue.")
@click.option("--prompts", "prompts_file", default=None,
              help='A file of prompts: one per line, or JSON lines with "prompt"; "-" for stdin.')
@sampling_options
@click.option("--batch-size", type=int, default=16, show_default=True, help="Prompts generated together.")
@click.option("--stream", is_flag=True, help="Print text as it is generated.")
@click.option("--draft-model", "draft_dir", default=None, type=click.Path(file_okay=False),
              help="Speculative decoding: a smaller checkpoint with the same tokenizer proposes tokens that "
                   "the model checks (the output follows the model's distribution exactly).")
@click.option("--draft-tokens", type=int, default=4, show_default=True, help="With --draft-model: tokens proposed per round.")
@device_option
@quantize_option
@dtype_option
@json_option
def command(model_dir, prompt, prompts_file, batch_size, stream, draft_dir, draft_tokens, device, dtype, as_json,
            **options):
    """Continue text with a model: sampling as in Hugging Face / the OpenAI API.

    \b
    Examples:
      llmlab generate --model runs/tiny/checkpoint --prompt "Once upon a time" --max-new-tokens 60
      llmlab generate --model DIR --prompt "Mia" --temperature 0 --json
      llmlab generate --model DIR --prompts prompts.txt --top-p 0.9 --seed 1 --json

    \b
    Output: the continuation only (not the prompt). With --json, one prompt prints one JSON object
    {"text", "token_ids", "finish_reason", "stop_reason", "prompt_tokens", "completion_tokens"}
    (+ "logprobs" / "top_logprobs" when asked); several prompts print one such object per line
    (JSON lines, in input order, each with "index" and "prompt"). --stream with --json prints
    {"index", "delta"} lines as text arrives, then the final object. Several prompts with
    --stream are generated one after another; without it they are batched. With --draft-model
    (speculative decoding, one prompt at a time) each object also has "speculative": the draft
    tokens proposed and accepted, "acceptance_rate", "target_forwards", "tokens_per_target_forward".
    """
    from llmlab.errors import ConfigError
    from llmlab.infer import Engine

    if (prompt is None) == (prompts_file is None):
        raise ConfigError("pass exactly one of --prompt TEXT or --prompts FILE")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    prompts = [prompt] if prompt is not None else read_prompts(prompts_file)
    model, tokenizer = load_checkpoint(model_dir, device, dtype=dtype)
    if draft_dir is not None:
        if stream:
            raise ConfigError("--stream is not available with --draft-model")
        return _speculative(model, tokenizer, load_checkpoint(draft_dir, device, dtype=dtype), prompts, draft_tokens,
                            generation_overrides(options), as_json)
    engine = Engine(model, tokenizer, max_batch_size=1 if stream else batch_size)
    config = engine.make_config(**generation_overrides(options))
    several = len(prompts) > 1
    start = time.perf_counter()

    if stream:
        results = []
        for i, p in enumerate(prompts):
            if several and not as_json:
                click.secho(f"\n[{i}] {p}", bold=True)
            pieces = engine.stream(p, config)
            for piece in pieces:
                if as_json:
                    click.echo(json.dumps({"index": i, "delta": piece}, ensure_ascii=False))
                else:
                    click.echo(piece, nl=False)
                    sys.stdout.flush()
            results.append(pieces.result)
            if as_json:
                emit_json({"index": i, **pieces.result.to_dict()})
            else:
                click.echo()
    else:
        results = _generate_all(engine, prompts, config, progress=several and not as_json)
        if as_json:
            for i, (p, r) in enumerate(zip(prompts, results)):
                emit_json({"index": i, "prompt": p, **r.to_dict()} if several else r.to_dict())
        else:
            for i, (p, r) in enumerate(zip(prompts, results)):
                if several:
                    click.secho(f"\n[{i}] {p}", bold=True)
                click.echo(r.text)
    if not as_json:
        elapsed = time.perf_counter() - start
        n = sum(len(r.token_ids) for r in results)
        reasons = sorted({r.finish_reason for r in results})
        click.secho(f"{n} tokens in {elapsed:.2f}s ({n / max(elapsed, 1e-9):.1f} tokens/s), finish: {', '.join(reasons)}",
                    err=True, dim=True)


def _speculative(model, tokenizer, draft, prompts, draft_tokens, overrides, as_json) -> None:
    """--draft-model: each prompt in turn through llmlab.infer.speculative."""
    from llmlab.infer.speculative import SpeculativeDecoder, SpeculativeStats

    decoder = SpeculativeDecoder(model, draft[0], tokenizer, draft[1], num_draft_tokens=draft_tokens)
    config = decoder.make_config(**overrides)
    total, several, start = SpeculativeStats(), len(prompts) > 1, time.perf_counter()
    for i, p in enumerate(prompts):
        result, stats = decoder.generate(p, config)
        total.add(stats)
        if as_json:
            head = {"index": i, "prompt": p} if several else {}
            emit_json({**head, **result.to_dict(), "speculative": stats.to_dict()})
        else:
            if several:
                click.secho(f"\n[{i}] {p}", bold=True)
            click.echo(result.text)
    if not as_json:
        elapsed = time.perf_counter() - start
        rate = total.acceptance_rate
        click.secho(f"{total.tokens} tokens in {elapsed:.2f}s ({total.tokens / max(elapsed, 1e-9):.1f} tokens/s); "
                    f"draft acceptance {'n/a' if rate is None else f'{rate:.2f}'}, "
                    f"{total.tokens_per_target_forward or 0:.2f} tokens per target forward", err=True, dim=True)


def _generate_all(engine, prompts, config, progress: bool):
    """Batched generation with a progress bar over finished prompts."""
    from llmlab.progress import progress_bar

    ids = [engine.add_request(p, config) for p in prompts]
    index = {rid: i for i, rid in enumerate(ids)}
    results = [None] * len(prompts)
    with progress_bar(total=len(prompts), unit="prompt", disable=not progress) as bar:
        while engine.has_unfinished():
            for out in engine.step():
                if out.finished:
                    results[index[out.request_id]] = out.result
                    bar.update()
    return results
