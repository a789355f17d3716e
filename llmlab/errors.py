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
