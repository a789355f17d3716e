"""`llmlab chat`: a streaming terminal chat with a checkpoint."""

from __future__ import annotations

import sys

import click

from llmlab.cli.cmd_generate import dtype_option, generation_overrides, load_model, sampling_options
from llmlab.cli.common import device_option, model_option

HELP = """commands: /reset (forget the conversation), /system TEXT (set the system prompt and reset),
          /save FILE (write the conversation as JSON), /help, /quit (or Ctrl-D)"""


@click.command("chat")
@model_option
@click.option("--system", "system_prompt", default="", help="System prompt.")
@sampling_options
@device_option
@dtype_option
def command(model_dir, system_prompt, device, dtype, **options):
    """Chat with a model in the terminal; replies stream as they are generated.

    \b
    Type a message and press Enter. Commands:
      /reset          forget the conversation
      /system TEXT    set the system prompt (and start over)
      /save FILE      write the conversation to FILE as JSON
      /quit           leave (as do Ctrl-D and Ctrl-C at the prompt)
    Ctrl-C while a reply is streaming stops that reply. Reads stdin line by line, so
    `printf 'hi\\n/save chat.json\\n' | llmlab chat --model DIR` works too.
    """
    from llmlab.errors import LLMLabError
    from llmlab.infer import LLMChatbot

    model, tokenizer = load_model(model_dir, device, dtype)
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
                except OSError as exc:
                    click.secho(f"cannot save: {exc}", fg="red", err=True)
                    continue
                click.secho(f"(saved {len(bot.conversation_history)} turns to {path})", dim=True, err=True)
            elif command_name == "/help":
                click.secho(HELP, dim=True, err=True)
            else:
                click.secho(f"unknown command {command_name}; {HELP}", fg="yellow", err=True)
            continue

        if interactive:
            click.secho("bot> ", nl=False, fg="cyan")
        try:
            for piece in bot.stream(message):
                click.echo(piece, nl=False)
                sys.stdout.flush()
        except KeyboardInterrupt:
            click.secho(" [interrupted]", dim=True)
            continue
        except LLMLabError as exc:  # e.g. a message longer than the context: say so and carry on
            click.secho(f"error: {exc}", fg="red", err=True)
            continue
        click.echo()
        if bot.trimmed_turns:
            click.secho(f"(the {bot.trimmed_turns} oldest turn(s) no longer fit the context and were left out)",
                        dim=True, err=True)
    if interactive:
        click.secho("bye", dim=True, err=True)


def _read_line(prompt: str) -> str:
    if prompt:
        return input(prompt)  # readline editing and history in a terminal
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line
