"""Errors that cross a boundary, each able to render itself as a Runware error item."""

from __future__ import annotations

from typing import Any

DOCS_URL = "https://runware.ai/docs/models/xai-grok-imagine-video"


class OpenImagineError(Exception):
    """Base error: a stable `code`, a human `message`, and the offending `parameter` if any."""

    http_status = 500
    default_code = "internalServerError"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        parameter: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.parameter = parameter
        self.extra = extra

    def item(self, task_type: str | None = None, task_uuid: str | None = None) -> dict[str, Any]:
        """The Runware error envelope item for this error."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.parameter is not None:
            out["parameter"] = self.parameter
            anchor = self.parameter.replace(".", "-").lower()
            out["documentation"] = f"{DOCS_URL}#request-{anchor}"
        else:
            out["documentation"] = DOCS_URL
        if task_type is not None:
            out["taskType"] = task_type
        if task_uuid is not None:
            out["taskUUID"] = task_uuid
        out.update(self.extra)
        return out


class InvalidInput(OpenImagineError):
    """The request is malformed or outside what the model card allows."""

    http_status = 400
    default_code = "invalidParameter"


class AuthError(OpenImagineError):
    """No valid API key."""

    http_status = 401
    default_code = "invalidApiKey"


class NotFound(OpenImagineError):
    """A task, result or media item does not exist (for this key)."""

    http_status = 404
    default_code = "taskNotFound"


class Conflict(OpenImagineError):
    """A taskUUID was reused with a different request."""

    http_status = 409
    default_code = "conflictTaskUUID"


class PayloadTooLarge(OpenImagineError):
    """The request body is over the configured limit."""

    http_status = 413
    default_code = "payloadTooLarge"


class MediaError(InvalidInput):
    """An input image or video cannot be used."""

    default_code = "invalidMedia"


class BackendError(OpenImagineError):
    """Generation failed inside the model backend."""

    http_status = 500
    default_code = "inferenceError"


class LeaseLost(Exception):
    """The worker no longer owns the job it is running (its lease expired and was taken)."""
