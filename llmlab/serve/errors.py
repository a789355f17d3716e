"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with the HTTP status
the official clients map to their exception classes (400 BadRequestError, 401
AuthenticationError, 404 NotFoundError, 429 RateLimitError, 503 InternalServerError)."""

from __future__ import annotations

import re

from llmlab.errors import ConfigError

# GenerationConfig's field names as the API spells them (for an error's "param").
API_NAMES = {"max_new_tokens": "max_tokens", "min_new_tokens": "min_tokens"}


class APIError(Exception):
    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, "invalid_request_error", param, code)


def from_config_error(exc: ConfigError, prompt_param: str = "prompt") -> APIError:
    """Something the engine rejected: 400, naming the field when the message does ("invalid
    generation parameter: top_p must be in (0, 1], got 2.0"); a prompt too long for the context
    gets OpenAI's code `context_length_exceeded`."""
    message = str(exc)
    m = re.match(r"invalid generation parameter: (\w+)", message)
    if m:
        return bad_request(message, API_NAMES.get(m.group(1), m.group(1)))
    if "prompt" in message:
        return bad_request(message, prompt_param, "context_length_exceeded" if "context" in message else None)
    return bad_request(message)
