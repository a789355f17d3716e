"""`llmlab chat`: a streaming terminal chat with a checkpoint."""

from __future__ import annotations

import sys

import click

from llmlab.cli.cmd_generate import dtype_option, generation_overrides, sampling_options
from llmlab.cli.common import device_option, load_checkpoint, model_option, quantize_option

HELP = """commands: /reset (forget the conversation), /system TEXT (set the system prompt and reset),
          /save FILE (write the conversation as JSON), /help, /quit (or Ctrl-D)"""


@click.command("chat")
@model_option
@click.option("--system", "system_prompt", default="", help="System prompt.")
@sampling_options
@device_option
@quantize_option
@dtype_option
def command(model_dir, system_prompt, device, dtype, **options):
    """Chat with a model in the terminal; replies stream as they are generated.

    \b
    Type a message and press Enter. Commands:
      /reset          forget the conversation
      /system TEXT    set the system prompt (and start over)
      /save FILE      write the conversation to FILE as JSON (in an existing folder)
      /quit           leave (as do Ctrl-D and Ctrl-C at the prompt)
    Ctrl-C while a reply is streaming stops that reply; what was generated stays in the
    conversation as the reply (marked "interrupted" in /save). Reads stdin line by line, so
    `printf 'hi\\n/save chat.json\\n' | llmlab chat --model DIR` works too.
    """
    from llmlab.errors import LLMLabError
    from llmlab.infer import LLMChatbot

    model, tokenizer = load_checkpoint(model_dir, device, dtype=dtype)
    bot = LLMChatbot(model, tokenizer, system_prompt, **generation_overrides(options))
    interactive = sys.stdin.isatty()
    if interactive:
        click.secho(f"chatting with {model_dir} ({model.config.context_length}-token context). {HELP}", dim=True, err=True)

    while True:
        try:
            line = _read_line("you> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            if interactive:
                click.echo("", err=True)
            break
        message = line.strip()
        if not message:
            continue
        if message.startswith("/"):
            command_name, _, arg = message.partition(" ")
            if command_name in ("/quit", "/exit"):
                break
            if command_name == "/reset":
                bot.reset()
                click.secho("(conversation reset)", dim=True, err=True)
            elif command_name == "/system":
                bot.system_prompt = arg.strip()
                bot.reset()
                click.secho(f"(system prompt set{'' if arg.strip() else ' to nothing'}; conversation reset)", dim=True, err=True)
            elif command_name == "/save":
                if not arg.strip():
                    click.secho("usage: /save FILE", fg="yellow", err=True)
                    continue
                try:
                    path = bot.save(arg.strip())
                except LLMLabError as exc:  # e.g. a folder that does not exist: say so, keep chatting
                    click.secho(f"error: {exc}", fg="red", err=True)
                    continue
                except OSError as exc:
                    click.secho(f"cannot save: {exc}", fg="red", err=True)
                    continue
                click.secho(f"(saved {_turns(len(bot.conversation_history))} to {path})", dim=True, err=True)
            elif command_name == "/help":
                click.secho(HELP, dim=True, err=True)
            else:
                click.secho(f"unknown command {command_name}; {HELP}", fg="yellow", err=True)
            continue

        if interactive:
            click.secho("bot> ", nl=False, fg="cyan")
        reply = bot.stream(message)
        try:
            for piece in reply:
                click.echo(piece, nl=False)
                sys.stdout.flush()
        except KeyboardInterrupt:
            reply.close()  # the partial reply stays in the conversation, marked interrupted
            click.secho(" [interrupted; kept as the reply]", dim=True)
            continue
        except LLMLabError as exc:  # e.g. a message longer than the context: say so and carry on
            click.secho(f"error: {exc}", fg="red", err=True)
            continue
        click.echo()
        if bot.last_result is not None and bot.last_result.logprobs is not None:
            _show_logprobs(bot.last_result, tokenizer)
        if bot.trimmed_turns == 1:
            click.secho("(the oldest turn no longer fits the context and was left out)", dim=True, err=True)
        elif bot.trimmed_turns:
            click.secho(f"(the {bot.trimmed_turns} oldest turns no longer fit the context and were left out)",
                        dim=True, err=True)
    if interactive:
        click.secho("bye", dim=True, err=True)


# chat has no --json: there --logprobs shows the numbers after each reply.
_CHAT_HELP = {
    "logprobs": "After each reply, list its tokens with their log-probabilities (on stderr).",
    "top_logprobs": "With the listing: also the N most likely alternatives per token (implies --logprobs).",
}
for _param in command.params:
    if _param.name in _CHAT_HELP:
        _param.help = _CHAT_HELP[_param.name]


def _turns(n: int) -> str:
    return f"{n} turn" + ("" if n == 1 else "s")


def _show_logprobs(result, tokenizer) -> None:
    """Each generated token, its log-probability and, when asked, the likeliest alternatives."""
    tops = result.top_logprobs or [None] * len(result.token_ids)
    for token, logprob, top in zip(result.token_ids, result.logprobs, tops):
        line = f"  {logprob:8.3f}  {tokenizer.decode([token])!r}"
        if top:
            line += "   (" + ", ".join(f"{tokenizer.decode([t])!r} {lp:.3f}" for t, lp in top.items()) + ")"
        click.secho(line, dim=True, err=True)


def _read_line(prompt: str) -> str:
    if prompt:
        return input(prompt)  # readline editing and history in a terminal
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line
