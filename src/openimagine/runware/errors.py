"""Domain errors as Runware error items, `{"errors": [...]}`, with the protocol's statuses."""

from __future__ import annotations

from typing import Any

from openimagine.errors import ErrorKind, OpenImagineError

DOCS_URL = "https://runware.ai/docs/models/xai-grok-imagine-video"

HTTP_STATUS = {
    ErrorKind.INVALID: 400,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.GONE: 410,
    ErrorKind.TOO_LARGE: 413,
    ErrorKind.TOO_MANY: 429,
    ErrorKind.INTERNAL: 500,
}


def http_status(err: OpenImagineError) -> int:
    """The HTTP status Runware answers this error with."""
    return HTTP_STATUS[err.kind]


def error_item(
    err: OpenImagineError, task_type: str | None = None, task_uuid: str | None = None
) -> dict[str, Any]:
    """The Runware error item: code, message, parameter, a documentation link, the task it
    belongs to, and the error's details (`allowedValues`, `min`, `max`, ...)."""
    out: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.parameter is not None:
        out["parameter"] = err.parameter
        anchor = err.parameter.replace(".", "-").lower()
        out["documentation"] = f"{DOCS_URL}#request-{anchor}"
    else:
        out["documentation"] = DOCS_URL
    if task_type is not None:
        out["taskType"] = task_type
    if task_uuid is not None:
        out["taskUUID"] = task_uuid
    out.update(err.details)
    return out


def auth_error_item(err: OpenImagineError) -> dict[str, Any]:
    """Auth errors carry taskType "authentication" and no taskUUID: the JS SDK routes them by
    `(taskUUID || taskType) === "authentication"`."""
    return error_item(err, "authentication", None)


def envelope(err: OpenImagineError, *, auth: bool = False) -> dict[str, Any]:
    """`{"errors": [item]}` for one error."""
    return {"errors": [auth_error_item(err) if auth else error_item(err)]}
