"""`llmlab eval <name>`: one module per subcommand, `<name>.py` with a click command `command`
(found by cli/cmd_eval.py, imported only when run); the options they share."""

import click

device_option = click.option(
    "--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N, mps, or auto (cuda if available)."
)
