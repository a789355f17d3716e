"""User-facing errors.

Anything a user can cause (a missing file, a bad flag, a corrupt checkpoint) raises an
`LLMLabError` subclass with a one-line message; the CLI prints it without a traceback.
"""


class LLMLabError(Exception):
    """An error caused by input the user can fix; its message is one readable line."""


class ConfigError(LLMLabError, ValueError):
    """An invalid or unknown configuration value."""


class CheckpointError(LLMLabError):
    """A checkpoint directory that is missing, incomplete, corrupt or inconsistent."""


class DataError(LLMLabError):
    """Input data that cannot be used (missing, empty, undecodable, malformed)."""


class OutputError(LLMLabError):
    """An output path that cannot be written, or that holds something llmlab must not replace."""


# ---------------------------------------------------------------------------- citing a place in a file
def at_line(path: object, line: int) -> str:
    """How every message cites a line of a file: `FILE:LINE` (the compiler convention, which editors
    and terminals can jump to)."""
    return f"{path}:{line}"


def json_error(path: object, exc: ValueError, line: int | None = None) -> str:
    """`FILE:LINE: invalid JSON (MESSAGE at column C)` for a json.JSONDecodeError, keeping its position.

    `line` is the file line the parsed text started on (a JSONL record); without it the error's own
    line is the file's (a whole .json file)."""
    lineno = exc.lineno if line is None else line + exc.lineno - 1
    msg = exc.msg if exc.msg.endswith(" at") else exc.msg + " at"  # "Invalid control character at"
    return f"{at_line(path, lineno)}: invalid JSON ({msg} column {exc.colno})"


class Interrupted(KeyboardInterrupt):
    """A training run stopped on Ctrl-C or SIGTERM. A KeyboardInterrupt, so that no `except
    Exception` on the way up swallows it; the CLI prints its message once, adds how to continue
    from `checkpoint` (None when nothing is left to continue from), and exits with 130."""

    def __init__(self, message: str, checkpoint: str | None = None):
        super().__init__(message)
        self.checkpoint = checkpoint
