"""Domain errors: a stable `code`, a message for people, and the parameter at fault.

They know no envelope and no transport: each door renders them in its own protocol's shape
(`runware.errors` for Runware's, `api.openai.errors` for OpenAI's) and picks the HTTP status
from the error's `kind`.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorKind(enum.StrEnum):
    """What kind of failure an error is, which each door maps to its own status codes."""

    INVALID = "invalid"  #: the request is malformed or outside the model card
    UNAUTHENTICATED = "unauthenticated"  #: no valid API key
    NOT_FOUND = "not_found"  #: no such task, result or media (for this key)
    CONFLICT = "conflict"  #: the request contradicts the stored state
    FORBIDDEN = "forbidden"  #: a signed URL that does not verify
    GONE = "gone"  #: a signed URL past its expiry
    TOO_LARGE = "too_large"  #: a body or input over a configured limit
    TOO_MANY = "too_many"  #: a key over one of its quotas; `retry_after_s` says when to retry
    INTERNAL = "internal"  #: the server failed


class OpenImagineError(Exception):
    """Base error. `details` are extra facts a door may show (allowed values, bounds)."""

    kind = ErrorKind.INTERNAL
    default_code = "internalServerError"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        parameter: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.parameter = parameter
        self.details = details


class InvalidInput(OpenImagineError):
    """The request is malformed or outside what the model card allows."""

    kind = ErrorKind.INVALID
    default_code = "invalidParameter"


class AuthError(OpenImagineError):
    """No valid API key."""

    kind = ErrorKind.UNAUTHENTICATED
    default_code = "invalidApiKey"


class NotFound(OpenImagineError):
    """A task, result or media item does not exist (for this key)."""

    kind = ErrorKind.NOT_FOUND
    default_code = "taskNotFound"


class Conflict(OpenImagineError):
    """A taskUUID was reused with a different request, or a task is busy."""

    kind = ErrorKind.CONFLICT
    default_code = "conflictTaskUUID"


class Forbidden(OpenImagineError):
    """A signed URL whose signature does not match."""

    kind = ErrorKind.FORBIDDEN
    default_code = "invalidSignature"


class Expired(OpenImagineError):
    """A signed URL used after its expiry."""

    kind = ErrorKind.GONE
    default_code = "urlExpired"


class PayloadTooLarge(OpenImagineError):
    """The request body is over the configured limit."""

    kind = ErrorKind.TOO_LARGE
    default_code = "payloadTooLarge"


class QuotaExceeded(OpenImagineError):
    """A key is over one of its quotas; nothing was stored. Retry after `retry_after_s`."""

    kind = ErrorKind.TOO_MANY
    default_code = "quotaExceeded"

    def __init__(self, message: str, *, code: str, retry_after_s: int, **details: Any) -> None:
        super().__init__(message, code=code, retryAfter=retry_after_s, **details)
        self.retry_after_s = retry_after_s


class MediaError(InvalidInput):
    """An input image or video cannot be used."""

    default_code = "invalidMedia"


class LeaseLost(Exception):
    """The worker no longer owns the job it is running (its lease expired and was taken)."""
